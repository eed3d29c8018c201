"""Colour datasets in the window, end to end: a folder of one's own RGB images opens, trains
and is shown in colour (decoded z, datapoint, manifold, strips, thumbnails), a dropped colour
image is encoded as an RGB input of the dataset's size, and a session keeps it. What is still
refused (a grey model's checkpoint on colour images) is one clear message."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from test_bring_your_own import drop

from explorer.core.session_file import load_session
from explorer.qt.app import open_startup
from explorer.qt.export import export_mosaic_png
from explorer.qt.views.image_panel import to_qimage
from tests.explorer.conftest import fast_config
from trainer import DataError, Session, load_source, save_checkpoint

WAIT_MS = 30_000
SIDE = 12
RED, BLUE, GREEN = (220, 30, 30), (30, 40, 220), (30, 200, 40)


def shape_image(colour, seed: int, size: int = 24) -> np.ndarray:
    """A filled square of ``colour`` at a random place on black, (size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    a = np.zeros((size, size, 3), np.uint8)
    s = int(rng.integers(size // 4, size // 2))
    y, x = rng.integers(0, size - s, 2)
    a[y:y + s, x:x + s] = colour
    return a


def colour_folder(root, n: int = 30):
    """Two labelled subfolders of RGB PNGs: red squares and blue squares."""
    for label, colour in (("red", RED), ("blue", BLUE)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(shape_image(colour, seed=i)).save(root / label / f"{i}.png")
    return root


def is_coloured(image) -> bool:
    """Whether a QImage holds visibly non-grey pixels."""
    rgb = image.convertToFormat(image.Format.Format_RGB888)
    a = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
    a = a[:, :3 * rgb.width()].reshape(rgb.height(), rgb.width(), 3).astype(int)
    return bool((a.max(-1) - a.min(-1) > 40).any())


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def test_to_qimage_is_grey_for_2d_and_rgb_for_3_channels():
    grey = to_qimage(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    assert grey.format() == grey.Format.Format_Grayscale8 and grey.size().toTuple() == (4, 3)
    rgb = np.zeros((3, 5, 3), np.float32)
    rgb[..., 0] = 1.0  # pure red
    colour = to_qimage(rgb)
    assert colour.format() == colour.Format.Format_RGB888
    assert colour.size().toTuple() == (5, 3)
    assert colour.pixelColor(4, 2).getRgb()[:3] == (255, 0, 0)
    assert to_qimage(np.full((2, 2, 3), 7, np.uint8)).pixelColor(0, 0).getRgb()[:3] == (7, 7, 7)
    with pytest.raises(ValueError, match="grey or .* RGB"):
        to_qimage(np.zeros((2, 2, 4), np.float32))


def test_a_colour_folder_trains_shows_colour_and_encodes_a_dropped_colour_image(
        qtbot, make_window, tmp_path):
    folder = colour_folder(tmp_path / "mine")
    w = make_window()
    w.confirm = lambda title, question: True  # switch from the built-in digits
    w.datasets.open_dataset(str(folder))
    run = w.state  # the current run changes with the dataset: asked for each time
    qtbot.waitUntil(lambda: run.current.dataset.channels == 3 and run.current.snapshot is not None
                    and run.current.snapshot.model.channels == 3 and steps(w) > 20,
                    timeout=WAIT_MS)
    assert run.current.dataset.stored_shape == (24, 24, 3)
    assert w.message_box is None or not w.message_box.isVisible()
    assert w.dataset_panel.fields["image size"].text() == "24 x 24 pixels, colour (RGB)"
    assert w.dataset_panel.fields["polarity"].text().startswith("colour pictures, kept")

    # The decoded z and a selected datapoint with its reconstruction, in RGB.
    w.selection.decode_z(0.0, 0.0)
    decoded = w.image_panel.decoded.array
    assert decoded.shape == (24, 24, 3)
    w.selection.select_point(0)  # a red square
    panel = w.image_panel
    assert panel.original.array.shape == panel.reconstruction.array.shape == (24, 24, 3)
    assert is_coloured(panel.original.grab().toImage())

    # The manifold and a traversal are RGB mosaics, exported as RGB PNGs.
    w.manifold_view.show()
    mosaic = w.manifold_view.mosaic()
    n = w.manifold_view.grid_box.value()
    assert mosaic.shape == (n * 24, n * 24, 3)
    with Image.open(export_mosaic_png(tmp_path / "manifold.png", mosaic)) as png:
        assert png.mode == "RGB" and png.size == (n * 24, n * 24)
    strip = w.strips.traversal
    qtbot.waitUntil(lambda: strip.mosaic is not None, timeout=WAIT_MS)
    assert strip.mosaic.ndim == 3 and strip.mosaic.shape[2] == 3
    with Image.open(strip.export(tmp_path / "traversal.png")) as png:
        assert png.mode == "RGB"
        assert png.size == (strip.mosaic.shape[1] * 4, strip.mosaic.shape[0] * 4)

    # Thumbnails on the plane draw the dataset's colour images.
    w.show_thumbnails(True)
    w.latent_view.autoRange()
    w.latent_view.grab()
    assert len(w.thumbnails.drawn) > 0

    # A colour image dropped on the plane: an RGB input of the dataset's size, its marker,
    # and the list's icon in colour.
    Image.fromarray(shape_image(GREEN, seed=5, size=40)).save(tmp_path / "green.png")
    encoded = w.encoded_panel
    with qtbot.waitSignal(encoded.job.finished, timeout=WAIT_MS):
        drop(w.latent_view.viewport(), [tmp_path / "green.png"])
    qtbot.waitUntil(lambda: w.latent_view.marker_names() == ["green.png"], timeout=WAIT_MS)
    entry = encoded.model.entries[0]
    assert entry.image.input.shape == (24, 24, 3) and entry.image.original.shape == (40, 40, 3)
    green = entry.image.input.reshape(-1, 3).max(0)
    assert green[1] > 0.7 and green[0] < 0.3 and green[2] < 0.3, green
    qtbot.waitUntil(lambda: encoded.model.entries[0].reconstruction is not None,
                    timeout=WAIT_MS)
    assert encoded.model.entries[0].reconstruction.shape == (24, 24, 3)
    icon = encoded.model.data(encoded.model.index(0), Qt.ItemDataRole.DecorationRole)
    assert is_coloured(icon.pixmap(icon.availableSizes()[0]).toImage())
    assert encoded.messages() == []
    w.selection.inspect_encoded(0)  # the inspector shows it in colour too
    assert w.inspector.tiles["image"].array.shape == (24, 24, 3)
    assert is_coloured(w.inspector.tiles["image"].grab().toImage())

    # A session saved from the window keeps the colour image and the colour model.
    path = tmp_path / "colour.lexp"
    assert w.sessions.save_session_to(path)
    loaded = load_session(path)
    assert loaded.checkpoint.channels == 3
    (back,) = loaded.encoded
    np.testing.assert_array_equal(back.original, entry.image.original)
    np.testing.assert_array_equal(back.input, entry.image.input)


def test_the_built_in_colour_sprites_open_from_the_command_line():
    startup = open_startup("sprites", None, "cpu", 1, arch="conv", latent_dim=8)
    assert startup.dataset.channels == 3 and startup.dataset.stored_shape == (32, 32, 3)
    assert (startup.config.arch, startup.config.latent_dim) == ("conv", 8)


def test_a_grey_checkpoint_on_colour_images_is_one_clear_message(tmp_path):
    digits = load_source("digits")  # 8 x 8 grey
    session = Session(digits, fast_config())
    session.step()
    saved = save_checkpoint(session, tmp_path / "grey_run")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "colour.npz",
             images=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="trained on grey images, but .* is colour"):
        open_startup(str(tmp_path / "colour.npz"), str(saved), "cpu", 1)


def test_encoded_images_follow_a_switch_between_colour_and_grey_datasets(qtbot, tmp_path):
    from explorer.qt.image_jobs import prepare_file
    from explorer.qt.views.encoded_images import EncodedImagesModel

    Image.fromarray(shape_image(GREEN, seed=2, size=30)).save(tmp_path / "green.png")
    model = EncodedImagesModel()
    model.set_target((16, 16, 3), None)  # a colour dataset: the whole frame, in RGB
    model.add([prepare_file(tmp_path / "green.png", (16, 16, 3), None)])
    (entry,) = model.entries
    assert entry.image.input.shape == (16, 16, 3) and entry.image.original.shape == (30, 30, 3)
    assert entry.image.input[..., 1].max() > 0.7 > entry.image.input[..., 0].max()
    model.set_target((16, 16), None)  # a grey dataset: the original's luma
    grey = model.entries[0].image.input
    assert grey.shape == (16, 16) and 0.4 < grey.max() < 0.9  # green's luma, not 1
    model.set_target((16, 16, 3), None)  # back: the kept original still has its colours
    np.testing.assert_allclose(model.entries[0].image.input, entry.image.input, atol=1e-6)
    # A pasted image is read in the dataset's channels too.
    pasted = model.add_qimage(to_qimage(shape_image(RED, seed=3, size=20)))
    assert pasted.input.shape == (16, 16, 3) and pasted.original.shape == (20, 20, 3)
    assert pasted.input[..., 0].max() > 0.7 > pasted.input[..., 2].max()
