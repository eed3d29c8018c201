"""Bring your own data, in the window: real drops (QDropEvents with file URLs) on the plane and
on the rest of the window, the clipboard, dataset switches from a drop and from the Datasets
menu (a real download from a loopback HTTP server, and offline), and closing mid-job."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QFileDialog, QProgressDialog
from test_encoded_images import _digit_like, make_bad_images, make_good_images

from explorer.qt.app import main
from explorer.qt.worker import running_workers
from trainer import download
from trainer.download import DatasetSpec, RemoteFile

WAIT_MS = 20_000


# ---------------------------------------------------------------- helpers


def drop(widget, paths) -> None:
    """Drag enter, move and drop files on ``widget``, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    action = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), action, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the drag was refused"
    move = QDragMoveEvent(pos.toPoint(), action, mime, buttons, mods)
    QApplication.sendEvent(widget, move)
    assert move.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(pos, action, mime, buttons, mods))


def plane_marker_names(window) -> list[str]:
    """The names written beside the markers on the latent plane."""
    return window.latent_view.marker_names()


def marker_sizes(window) -> list[float]:
    return window.latent_view.marker_sizes()


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def wait_training(qtbot, window, more_than: int = 5) -> None:
    qtbot.waitUntil(lambda: window.state.current.snapshot is not None and steps(window) > more_than,
                    timeout=WAIT_MS)


class Answers:
    """The window's ``confirm``: records each question and gives a fixed answer."""

    def __init__(self, answer: bool):
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, title: str, question: str) -> bool:
        self.questions.append(question)
        return self.answer


def write_npz(path, n: int = 200, side: int = 12) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (n, side, side)).astype(np.uint8)
    np.savez(path, images=images, labels=rng.integers(0, 4, n))


# ---------------------------------------------------------------- images


def test_drops_encode_good_images_and_name_every_bad_one(qtbot, make_window, tmp_path):
    w = make_window()
    wait_training(qtbot, w)
    good = make_good_images(tmp_path / "good")
    bad = make_bad_images(tmp_path / "bad")
    paths = [tmp_path / "good" / n for n in good] + [tmp_path / "bad" / n for n in bad]
    panel = w.encoded_panel

    with qtbot.waitSignal(panel.job.finished, timeout=WAIT_MS):
        drop(w.latent_view.viewport(), paths)
    qtbot.waitUntil(lambda: sorted(plane_marker_names(w)) == sorted(good), timeout=WAIT_MS)
    assert len(panel.model) == len(good)
    for name, reason in bad.items():
        hits = [m for m in panel.messages() if name in m]
        assert len(hits) == 1 and reason in hits[0], (name, panel.messages())
        assert hits[0] in w.message_box.text(), "the user is told about each bad file"
    assert w.message_box.isVisible() and not w.message_box.isModal()
    assert steps(w) >= 0 and w.trainers.current.worker.isRunning(), "training goes on"

    # A drop on any other part of the window (here a dock's panel) encodes as well.
    Image.fromarray(_digit_like(40, seed=9)).save(tmp_path / "extra.png")
    with qtbot.waitSignal(panel.job.finished, timeout=WAIT_MS):
        drop(w.dataset_panel, [tmp_path / "extra.png"])
    qtbot.waitUntil(lambda: "extra.png" in plane_marker_names(w), timeout=WAIT_MS)
    assert len(panel.model) == len(good) + 1

    # The markers follow training: a later snapshot moves them.
    before = panel.model.markers()[0]
    version = w.state.current.snapshot.version
    qtbot.waitUntil(lambda: w.state.current.snapshot.version > version + 1, timeout=WAIT_MS)
    assert np.abs(panel.model.markers()[0] - before).max() > 0

    # Selecting on the plane highlights the row, and the row highlights its marker.
    w.current_run.toggle_running()  # pause: the markers stay put while we click
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.paused, timeout=WAIT_MS)
    mu = panel.model.markers()[0]
    target = int(np.argmax(mu[:, 0]))  # the rightmost marker: nothing lies beyond it
    vb = w.latent_view.getPlotItem().vb
    pixel = w.latent_view.mapFromScene(vb.mapViewToScene(QPointF(*map(float, mu[target]))))
    qtbot.mouseClick(w.latent_view.viewport(), Qt.MouseButton.LeftButton, pos=pixel)
    chosen = panel.selected()
    assert chosen >= 0 and np.allclose(mu[chosen], mu[target], atol=0.05)
    assert marker_sizes(w)[chosen] > max(s for i, s in enumerate(marker_sizes(w)) if i != chosen)
    panel.select(0)
    assert marker_sizes(w)[0] > marker_sizes(w)[1]


def test_paste_and_the_file_menu_encode_or_say_why_not(qtbot, make_window, tmp_path,
                                                       monkeypatch):
    w = make_window()
    wait_training(qtbot, w, 0)
    image = QImage(120, 120, QImage.Format.Format_Grayscale8)
    image.fill(0)
    for y in range(20, 100):
        for x in range(55, 65):
            image.setPixel(x, y, 0xFFFFFF)  # a white "1" on black
    clipboard = QApplication.clipboard()
    clipboard.setImage(image)
    qtbot.keyClick(w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert [e.name for e in w.encoded_panel.model.entries] == ["pasted image 1"]
    qtbot.waitUntil(lambda: plane_marker_names(w) == ["pasted image 1"], timeout=WAIT_MS)

    clipboard.clear()
    qtbot.keyClick(w, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert len(w.encoded_panel.model) == 1
    assert "the clipboard holds no image" in w.message_box.text()

    picked = [str(_save(tmp_path, "picked.png")), str(tmp_path / "gone.png")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, "Images"))
    action = next(a for m in w.menuBar().actions() if m.text() == "&File"
                  for a in m.menu().actions() if a.text() == "Encode images...")
    with qtbot.waitSignal(w.encoded_panel.job.finished, timeout=WAIT_MS):
        action.trigger()
    assert [e.name for e in w.encoded_panel.model.entries] == ["pasted image 1", "picked.png"]
    assert "gone.png: no such file" in w.message_box.text()


# ---------------------------------------------------------------- datasets


def test_a_dropped_npz_is_offered_and_trained_on(qtbot, make_window, tmp_path, digits):
    w = make_window()
    wait_training(qtbot, w)
    path = tmp_path / "mine.npz"
    write_npz(path)
    no = Answers(False)
    w.confirm = no

    # Mixed with an image, the dataset is not opened: the image is encoded, the user told.
    with qtbot.waitSignal(w.encoded_panel.job.finished, timeout=WAIT_MS):
        drop(w.latent_view.viewport(), [path, _save(tmp_path, "one.png")])
    assert [e.name for e in w.encoded_panel.model.entries] == ["one.png"]
    assert "Not opened as a dataset" in w.message_box.text()
    assert str(path) in w.message_box.text() and no.questions == []

    w.confirm = no
    drop(w.latent_view.viewport(), [path])  # read in the background, then asked
    qtbot.waitUntil(lambda: no.questions == [f"Train on {path}? (the current run stops)"],
                    timeout=WAIT_MS)
    assert not w.datasets.loader.is_running() and w.state.current.dataset is digits

    old, seed = w.trainers.current.worker, w.trainers.current.worker.config.seed
    w.confirm = Answers(True)
    drop(w, [path])  # on the window itself this time
    qtbot.waitUntil(lambda: len(w.state.current.dataset) == 200, timeout=WAIT_MS)
    worker = w.trainers.current.worker
    assert running_workers() in ([], [worker]), "the old run was stopped and waited for"
    assert worker is not old and worker.dataset is w.state.current.dataset
    assert worker.config.seed == seed
    assert "mine" in w.windowTitle() and w.dataset_panel.fields["N"].text() == "200 images"
    wait_training(qtbot, w)
    snapshot = w.state.current.snapshot
    assert snapshot.mu.shape == (200, 2) and snapshot.model.image_shape == (12, 12)
    (entry,) = w.encoded_panel.model.entries  # preprocessed again for the new image size
    assert entry.image.input.shape == (12, 12)
    qtbot.waitUntil(lambda: plane_marker_names(w) == ["one.png"], timeout=WAIT_MS)


def test_a_corrupt_file_from_the_menu_keeps_training_on_digits(qtbot, make_window, tmp_path,
                                                               monkeypatch, digits):
    w = make_window()
    wait_training(qtbot, w)
    corrupt = tmp_path / "broken.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is no zip archive")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *args, **kwargs: (str(corrupt), "Datasets"))
    w.confirm = Answers(True)
    action = next(a for m in w.menuBar().actions() if m.text() == "&Datasets"
                  for a in m.menu().actions() if a.text() == "Open file...")
    action.trigger()
    qtbot.waitUntil(lambda: w.message_box is not None and w.message_box.isVisible(),
                    timeout=WAIT_MS)
    text = w.message_box.text()
    assert str(corrupt) in text and "Still training on Built-in digits" in text
    assert w.state.current.dataset is digits and w.datasets.load_dialog is None
    before = steps(w)
    qtbot.waitUntil(lambda: steps(w) > before + 5, timeout=WAIT_MS)
    assert w.trainers.current.worker.isRunning()


def test_closing_mid_folder_encode_and_mid_load_leaves_no_thread(qtbot, make_window, tmp_path,
                                                                 digits):
    images = tmp_path / "many"
    labelled = tmp_path / "labelled" / "a"
    images.mkdir()
    labelled.mkdir(parents=True)
    for i in range(300):
        Image.fromarray(_digit_like(96, seed=i)).save(images / f"img{i}.png")
    for i in range(300):
        (labelled / f"img{i}.png").hardlink_to(images / f"img{i}.png")
    w = make_window()
    panel = w.encoded_panel
    seen = []
    panel.job.progress.connect(lambda done, total: seen.append(done))
    drop(w, [images])
    qtbot.waitUntil(lambda: len(seen) > 3, timeout=WAIT_MS)
    w.datasets.open_dataset(str(tmp_path / "labelled"))
    assert w.datasets.loader.is_running() and isinstance(w.datasets.load_dialog, QProgressDialog)
    w.close()
    assert panel.job.cancel_and_wait(0) and w.datasets.loader.cancel_and_wait(0), "a thread is left"
    assert not w.trainers.current.worker.isRunning() and w.state.current.dataset is digits
    assert max(seen) < 300


# ---------------------------------------------------------------- MNIST from a loopback server


def _idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback HTTP server with small MNIST-like IDX files; MNIST's spec points at it."""
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (200, 28, 28)),
             "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 200),
             "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (50, 28, 28)),
             "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 50)}
    remote = []
    for name, array in files.items():
        data = _idx_gz(array)
        (served / name).write_bytes(data)
        remote.append(RemoteFile(name, hashlib.sha256(data).hexdigest(), len(data)))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # every request stays on 127.0.0.1

    def point_mnist_at(url: str) -> None:
        monkeypatch.setattr("trainer.download.KNOWN_DATASETS", {"mnist": DatasetSpec(
            name="mnist", title="MNIST", base_urls=(url,), files=tuple(remote))})

    point_mnist_at(f"http://127.0.0.1:{httpd.server_address[1]}/")
    yield point_mnist_at
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _refused_url() -> str:
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_mnist_offline_stays_then_downloads_with_progress_and_switches(qtbot, make_window,
                                                                       mirror, digits):
    w = make_window()
    wait_training(qtbot, w)
    w.confirm = Answers(True)
    working = download.KNOWN_DATASETS["mnist"].base_urls[0]
    mirror(_refused_url())
    w.actions["dataset_mnist"].trigger()
    qtbot.waitUntil(lambda: w.message_box is not None and w.message_box.isVisible(),
                    timeout=WAIT_MS)
    text = w.message_box.text()
    assert "could not reach 127.0.0.1" in text and "internet connection" in text
    assert w.state.current.dataset is digits and w.trainers.current.worker.isRunning()
    before = steps(w)
    qtbot.waitUntil(lambda: steps(w) > before + 5, timeout=WAIT_MS)

    mirror(working)
    progress, bar = [], []

    def on_progress(done: int, total: int) -> None:  # runs after the window's own slot
        # The modal dialog's setValue() processes events in the window's slot, so later
        # reports, and even the end of the load, may be handled before this one runs.
        progress.append((done, total))
        dialog = w.datasets.load_dialog
        if dialog is not None:
            bar.append((dialog.value(), dialog.maximum(), dialog.labelText()))

    w.datasets.loader.progress.connect(on_progress)
    w.actions["dataset_mnist"].trigger()
    assert isinstance(w.datasets.load_dialog, QProgressDialog)
    qtbot.waitUntil(lambda: w.state.current.dataset.name == "MNIST", timeout=WAIT_MS)
    total = sum(f.size for f in download.KNOWN_DATASETS["mnist"].files)
    assert progress and max(progress) == (total, total)
    assert all(0 <= d <= t == total for d, t in progress)
    assert bar and all(m == total // 1024 and 0 <= v <= m for v, m, _ in bar)  # in KB
    assert max(bar)[2].startswith("Downloading MNIST:") and "MB" in max(bar)[2]
    assert w.datasets.load_dialog is None  # closed once loaded
    assert w.confirm.questions[-1] == "Switch dataset? The current run will be discarded."
    assert len(w.state.current.dataset) == 250 and w.state.current.dataset.image_shape == (28, 28)
    wait_training(qtbot, w)
    assert w.state.current.snapshot.mu.shape == (250, 2)


# ---------------------------------------------------------------- the command line


def _save(folder, name: str):
    path = folder / name
    Image.fromarray(_digit_like(48)).save(path)
    return path


def _garbage_npz(folder):
    path = folder / "bad.npz"
    path.write_bytes(b"garbage")
    return path


@pytest.mark.parametrize("make_source, fragment", [
    (lambda tmp: tmp / "nothing.npz", "no such file or folder"),
    (_garbage_npz, "bad.npz"),
    (lambda tmp: _save(tmp, "single.png"), "a single image is not a dataset"),
    (lambda tmp: tmp, "no readable images"),
])
def test_a_bad_source_on_the_command_line_is_one_line_and_status_2(qapp, tmp_path, capsys,
                                                                   make_source, fragment):
    source = str(make_source(tmp_path))
    assert main([source]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latent-explorer: ") and "\n" not in err, err
    assert fragment in err, err


def test_mnist_offline_on_the_command_line_is_one_line_and_status_2(qapp, mirror, capsys):
    mirror(_refused_url())
    assert main(["mnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not reach 127.0.0.1" in err[0], err


def _idx_source(folder):
    rng = np.random.default_rng(5)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(_idx_gz(rng.integers(0, 256, (60, 28, 28))))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(_idx_gz(rng.integers(0, 10, 60)))
    return path


def _npz_source(folder):
    write_npz(folder / "mine.npz", n=60)
    return folder / "mine.npz"


def _folder_source(folder):
    for label in ("a", "b"):
        (folder / "set" / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(_digit_like(20, seed=i)).save(folder / "set" / label / f"{i}.png")
    return folder / "set"


@pytest.mark.parametrize("make_source", [_idx_source, _npz_source, _folder_source])
def test_the_command_line_opens_idx_npz_and_folders(qapp, tmp_path, make_source):
    out = tmp_path / "shot.png"
    assert main([str(make_source(tmp_path)), "--screenshot", str(out), "--steps", "5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_line_downloads_mnist(qapp, mirror, tmp_path):
    out = tmp_path / "shot.png"
    assert main(["mnist", "--screenshot", str(out), "--steps", "5"]) == 0
    assert out.exists()
