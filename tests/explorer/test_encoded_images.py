"""Images the user brings: real files of every kind read in the background, bad files each
named with a reason, cancel mid-folder, re-encoding with a real model, the list panel."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QPushButton

from explorer.core.intake import read_drop
from explorer.qt.image_jobs import encode_files, prepare_file
from explorer.qt.views.encoded_images import EncodedImagesPanel
from trainer import Session, TrainConfig, fit_fraction

# ---------------------------------------------------------------- fixtures: models and files

def _frozen(digits, steps: int):
    session = Session(digits, TrainConfig(hidden=(64,), threads=1, batch_size=64, seed=0))
    for _ in range(steps):
        session.step()
    snapshot = session.snapshot()
    return snapshot.model, snapshot.mu


@pytest.fixture(scope="module")
def trained(digits):
    """A briefly trained digits model (300 steps) and every datapoint's mu under it."""
    return _frozen(digits, 300)


@pytest.fixture(scope="module")
def untrained(digits):
    return _frozen(digits, 0)[0]


def _digit_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """A bright stroke on black, with a little noise: something that looks like ink."""
    rng = np.random.default_rng(seed)
    a = np.zeros((size, size), np.uint8)
    c = size // 2
    a[size // 5: -size // 5, c - size // 10: c + size // 10] = 230
    a[size // 5: size // 5 + size // 8, c - size // 4: c + size // 4] = 200
    return np.clip(a + rng.integers(0, 20, a.shape), 0, 255).astype(np.uint8)


def _png_with_header_size(path: Path, width: int, height: int) -> None:
    """A tiny valid PNG whose IHDR claims width x height (a decompression-bomb header)."""
    Image.new("L", (4, 4)).save(path)
    raw = bytearray(path.read_bytes())
    ihdr = raw[12:29]  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))


def make_good_images(folder: Path) -> dict[str, str | None]:
    """One file of each kind Pillow writes; the value is a note read_image must give."""
    folder.mkdir(parents=True, exist_ok=True)
    ink = _digit_like()
    Image.fromarray(ink).save(folder / "plain.png")
    Image.fromarray(ink).convert("RGB").save(folder / "photo.jpg", quality=90)
    Image.fromarray(255 - ink).save(folder / "black_on_white.bmp")
    frames = [Image.fromarray(ink).convert("P"), Image.fromarray(ink[::-1]).convert("P")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(ink.astype(np.uint16) * 257).save(folder / "deep.tif")  # I;16
    Image.fromarray(ink).convert("RGB").save(folder / "web.webp")
    palette = Image.fromarray(np.where(ink > 100, 1, 0).astype(np.uint8), mode="P")
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # 0: white, 1: black ink
    palette.save(folder / "palette.png", transparency=0)  # the white background is transparent
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink  # black ink whose opacity is the stroke, on a transparent canvas
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    Image.fromarray(255 - ink).convert("CMYK").save(folder / "cmyk.jpg")
    inverted = "light background: inverted"
    return {"plain.png": None, "photo.jpg": None, "black_on_white.bmp": inverted,
            "animated.gif": "animated: used the first frame of 2",
            "deep.tif": "16-bit greyscale", "web.webp": None,
            "palette.png": "transparency flattened onto white",
            "rgba.png": "transparency flattened onto white", "cmyk.jpg": inverted}


def make_bad_images(folder: Path) -> dict[str, str]:
    """Each bad input and the reason its message must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.png").write_text("this is a text file named .png\n")
    (folder / "zero.png").write_bytes(b"")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), np.uint8)).save(
        folder / "truncated.png")
    data = (folder / "truncated.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    _png_with_header_size(folder / "bomb.png", 100_000, 100_000)
    return {"notes.png": "not an image", "zero.png": "empty file",
            "truncated.png": "truncated", "bomb.png": "decompression bomb",
            "missing.png": "no such file"}


def _read(qtbot, panel: EncodedImagesPanel, paths: list, timeout: int = 20_000):
    with qtbot.waitSignal(panel.job.finished, timeout=timeout) as blocker:
        panel.encode_files([str(p) for p in paths])
    return blocker.args


@pytest.fixture
def panel(qtbot, digits):
    widget = EncodedImagesPanel()
    qtbot.addWidget(widget)
    widget.set_dataset(digits)
    yield widget
    assert widget.cancel_and_wait(), "an image-reading thread was left running"


# ---------------------------------------------------------------- reading files


def test_every_good_file_encodes_and_every_bad_one_is_named(qtbot, panel, trained, tmp_path):
    good = make_good_images(tmp_path / "drop")
    bad = make_bad_images(tmp_path / "drop")
    (tmp_path / "drop" / "readme.txt").write_text("not an image type: skipped in a folder")
    missing = tmp_path / "missing.png"
    images, messages = _read(qtbot, panel, [tmp_path / "drop", missing])

    names = [im.name for im in images]
    assert sorted(names) == sorted(good)
    for name, reason in bad.items():
        hits = [m for m in messages if name in m]
        assert len(hits) == 1, (name, messages)
        assert reason in hits[0], (name, hits[0])
    assert any("1 file(s) skipped" in m for m in messages)
    assert panel.messages() == messages
    assert all(m in panel.problems.toPlainText() for m in messages)

    panel.model.reencode(trained[0])
    entries = panel.model.entries
    assert [e.name for e in entries] == names
    for e in entries:
        assert e.image.input.shape == (8, 8) and e.image.input.dtype == np.float32
        assert e.mu.shape == (2,) and np.isfinite(e.mu).all(), e.name
        assert e.sigma.shape == (2,) and (e.sigma > 0).all(), e.name
        note = good[e.name]
        if note is not None:
            assert any(note in n for n in e.image.notes), (e.name, e.image.notes)
    mu, sigma, marker_names = panel.model.markers()
    assert mu.shape == sigma.shape == (len(good), 2) and marker_names == names


def test_a_folder_reports_progress_and_cancels_midway(qtbot, panel, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        Image.fromarray(_digit_like(96, seed=i)).save(folder / f"img{i}.png")
    seen: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 5:  # press the dialog's Cancel button, as the user would
            button = panel.progress_dialog().findChild(QPushButton)
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    panel.job.progress.connect(on_progress)
    images, messages = _read(qtbot, panel, [folder])
    assert seen[0] == (0, 300) and all(t == 300 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert 5 <= len(images) < 300
    assert len(panel.model) == len(images)
    assert any(m.startswith("cancelled:") for m in messages)
    assert not panel.job.is_running() and panel.progress_dialog() is None


def test_closing_mid_read_leaves_no_thread(qtbot, digits, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        Image.fromarray(_digit_like(96, seed=i)).save(folder / f"img{i}.png")
    job = encode_files([folder], digits.image_shape, fit_fraction(digits))
    assert job.is_running()
    assert job.cancel_and_wait(10_000)  # what the window's closeEvent calls
    with qtbot.waitSignal(job.finished, timeout=5000) as blocker:
        pass  # the queued "finished" still arrives, with what was read before the cancel
    images, messages = blocker.args
    assert len(images) < 60 and messages[-1].startswith("cancelled:")


def test_pasted_image_with_alpha_is_flattened_and_encoded(qtbot, panel, trained):
    image = QImage(200, 120, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setPen(QPen(QColor("black"), 14))
    p.drawLine(QPointF(100, 15), QPointF(100, 105))  # a black "1" on a transparent canvas
    p.end()
    panel.model.reencode(trained[0])
    assert panel.add_qimage(image)
    (entry,) = panel.model.entries
    assert entry.name == "pasted image 1" and entry.image.source is None
    assert any("transparency flattened onto white" in n for n in entry.image.notes)
    assert np.isfinite(entry.mu).all()
    ink = entry.image.input
    assert ink[:, 3:5].mean() > 3 * ink[:, [0, 7]].mean()  # the stroke is bright and central

    assert not panel.add_qimage(QImage())
    assert panel.messages() == ["pasted image 2: the clipboard holds no image"]


# ---------------------------------------------------------------- encoding


def test_reencode_follows_the_model_and_details_follow(qtbot, panel, trained, untrained,
                                                       tmp_path):
    make_good_images(tmp_path / "good")
    _read(qtbot, panel, [tmp_path / "good"])
    model = panel.model
    assert model.markers()[0].shape == (0, 2)  # nothing encoded before a model arrives
    changed = []
    model.changed.connect(lambda: changed.append(True))
    assert model.reencode(untrained)
    before = model.markers()[0]
    assert model.reencode(trained[0])
    after = model.markers()[0]
    assert len(changed) == 2
    assert np.abs(after - before).max() > 0.05
    model.refresh_details()
    entries = model.entries
    for e in entries:
        assert e.reconstruction.shape == (8, 8) and np.isfinite(e.elbo)
        assert np.isclose(e.elbo, e.recon - e.kl, atol=1e-3) and e.kl >= 0
    text = model.data(model.index(0))
    assert f"ELBO {entries[0].elbo:.1f} nats (higher is better)" in text
    assert "mu (" in text and "sigma (" in text
    assert model.elbo_label() == "ELBO (nats, higher is better)"
    icon = model.data(model.index(0), Qt.ItemDataRole.DecorationRole).availableSizes()[0]
    assert icon.width() > 2 * icon.height()  # three images side by side

    class OtherSize:  # a snapshot from before a dataset switch must be refused, not crash
        stored_shape = (28, 28)  # one image as the model gives it

    assert not model.reencode(OtherSize())
    np.testing.assert_array_equal(model.markers()[0], after)


def test_switching_dataset_preprocesses_again(qtbot, panel, trained, tmp_path):
    make_good_images(tmp_path / "good")
    _read(qtbot, panel, [tmp_path / "good"])
    panel.model.reencode(trained[0])
    panel.model.set_target((28, 28), 20 / 28)
    assert all(e.image.input.shape == (28, 28) for e in panel.model.entries)
    assert panel.model.markers()[0].shape == (0, 2)  # the 8x8 model cannot encode these


def test_a_black_on_white_digit_encodes_near_its_original(digits, trained, tmp_path):
    frozen, mu_all = trained
    rng = np.random.default_rng(0)
    spread = np.median(np.linalg.norm(mu_all - mu_all[rng.permutation(len(mu_all))], axis=1))
    distances = []
    for label in range(10):
        i = int(np.flatnonzero(digits.labels == label)[0])
        grey = np.rint(digits.pixels[i] * (255 / 16)).astype(np.uint8)
        scan = Image.fromarray(255 - grey).resize((128, 128), Image.Resampling.BICUBIC)
        scan.save(tmp_path / f"scan{label}.png")  # black ink on white, 16 times larger
        prepared = prepare_file(tmp_path / f"scan{label}.png", digits.image_shape,
                                fit_fraction(digits))
        mu_scan, _ = frozen.encode(prepared.input.reshape(1, -1))
        mu_orig, _ = frozen.encode(digits.as_float([i]))
        distances.append(float(np.linalg.norm(mu_scan - mu_orig)))
    assert np.median(distances) < 0.35 * spread, (distances, spread)
    assert max(distances) < spread, (distances, spread)


# ---------------------------------------------------------------- the list panel


def test_remove_clear_and_selection_sync(qtbot, panel, trained, tmp_path):
    make_good_images(tmp_path / "good")
    _read(qtbot, panel, [tmp_path / "good"])
    panel.model.reencode(trained[0])
    panel.show()
    qtbot.waitExposed(panel)
    n = len(panel.model)
    names = [e.name for e in panel.model.entries]

    with qtbot.waitSignal(panel.entrySelected) as blocker:  # the plane's marker was picked
        panel.select(2)
    assert blocker.args == [2] and panel.selected() == 2
    with qtbot.assertNotEmitted(panel.entrySelected):
        panel.select(2)  # no change, no signal: no ping-pong with the plane

    rect = panel.list.visualRect(panel.model.index(1))
    with qtbot.waitSignal(panel.entrySelected) as blocker:  # a click on the list's row
        qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [1]

    panel.list.setFocus()
    qtbot.keyClick(panel.list, Qt.Key.Key_Delete)
    assert len(panel.model) == n - 1
    assert [e.name for e in panel.model.entries] == names[:1] + names[2:]
    assert panel.model.markers()[0].shape == (n - 1, 2)

    panel.select(0)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert [e.name for e in panel.model.entries] == names[2:]

    with qtbot.waitSignal(panel.entrySelected) as blocker:
        panel.select(-1)
    assert blocker.args == [-1] and not panel.remove_button.isEnabled()

    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert len(panel.model) == 0 and panel.model.markers()[2] == []
    assert panel.hint.isVisible() and not panel.clear_button.isEnabled()


def test_what_a_drop_means(tmp_path):
    img = tmp_path / "a.png"
    Image.fromarray(_digit_like(16)).save(img)
    npz = tmp_path / "set.npz"
    np.savez(npz, images=np.zeros((2, 8, 8), np.uint8))
    idx = tmp_path / "train-images-idx3-ubyte.gz"
    idx.write_bytes(b"")
    labelled = tmp_path / "labelled"
    (labelled / "cats").mkdir(parents=True)
    Image.fromarray(_digit_like(16)).save(labelled / "cats" / "c.png")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(_digit_like(16)).save(loose / "x.png")

    assert read_drop([img]).kind == "images"
    assert read_drop([img, loose, tmp_path / "notes.txt"]).kind == "images"
    assert read_drop([npz]).kind == "dataset"
    assert read_drop([idx]).kind == "dataset"
    assert read_drop([labelled]).kind == "dataset"
    assert read_drop([npz, img]).kind == "mixed"
    assert read_drop([npz, idx]).kind == "mixed"
