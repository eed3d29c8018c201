"""Sessions through the window: save, close, open and resume; unsaved-state prompts; autosave
on quit; crafted files; exports from the menu; recent files."""

from __future__ import annotations

import csv
import json
import pickle
import zipfile
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.core.session_file import load_session
from explorer.qt.export import LATENT_COLUMNS
from explorer.qt.image_jobs import PreparedImage
from trainer.evidence import dataset_evidence

WAIT_MS = 20_000


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """Autosaves land under tmp_path, never in the user's data folder."""
    folder = tmp_path / "data"
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(folder))
    return folder


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def train_then_pause(qtbot, window, more_than: int = 20) -> None:
    """Train a little, pause, and wait until the window shows the paused step."""
    qtbot.waitUntil(lambda: window.state.current.snapshot is not None and steps(window) > more_than,
                    timeout=WAIT_MS)
    window.current_run.toggle_running()
    qtbot.waitUntil(lambda: window.trainers.current.worker.session.paused
                    and window.state.current.progress is not None
                    and window.state.current.progress.paused
                    and window.state.current.progress.step == steps(window), timeout=WAIT_MS)
    # and the snapshot of the paused weights (snapshots lag the steps while training)
    qtbot.waitUntil(lambda: window.state.current.snapshot.progress.step
                    == window.trainers.current.worker.session.step_count, timeout=WAIT_MS)


def add_encoded(window, digits, names=("first", "second")) -> None:
    h, w = digits.image_shape
    for k, name in enumerate(names):
        x = digits.as_float([k]).reshape(h, w).astype(np.float32)
        grey = np.rint(x * 255).astype(np.uint8)
        window.encoded_panel.model.add([PreparedImage(name, None, grey, x, ["a note"])])


def answer_file(monkeypatch, window, path) -> None:
    monkeypatch.setattr(window, "save_file_name", lambda *args: str(path))
    monkeypatch.setattr(window, "open_file_name", lambda *args: str(path))


class Recorder:
    """Stands in for a question or message method: records calls, gives a fixed answer."""

    def __init__(self, answer=None):
        self.answer = answer
        self.calls: list[tuple] = []

    def __call__(self, *args):
        self.calls.append(args)
        return self.answer


def test_save_close_open_resumes_the_same_run(qtbot, make_window, digits, tmp_path,
                                               monkeypatch):
    first = make_window()
    assert first.windowTitle().startswith("untitled[*]") and not first.isWindowModified()
    add_encoded(first, digits)
    train_then_pause(qtbot, first)
    first.selection.select_point(7)
    first.encoded_panel.select(1)
    first.actions["sigma_2"].trigger()
    first.manifold_view.set_mode("view")
    first.manifold_view.set_grid_size(9)
    assert first.isWindowModified()  # trained and encoded since the (fresh) start
    path = tmp_path / "run.lexp"
    answer_file(monkeypatch, first, path)
    first.actions["save"].trigger()
    assert path.is_file() and not first.isWindowModified()
    assert first.windowTitle().startswith("run[*]")
    weights = {k: v.clone() for k,
               v in first.trainers.current.worker.session.model.state_dict().items()}
    history = first.state.current.progress.train
    step = steps(first)
    x = dataset_evidence(digits,
                         first.state.current.snapshot.config.binarization)  # the plane's x_i
    mu = first.state.current.snapshot.model.encode(x)[0]
    heldout = first.trainers.current.worker.session.split.heldout.copy()
    region = first.latent_view.view_region()
    first.close()

    second = make_window()
    qtbot.waitUntil(lambda: steps(second) > 5 and second.isWindowModified(), timeout=WAIT_MS)
    ask = Recorder("discard")
    monkeypatch.setattr(second.sessions, "ask_unsaved", ask)
    answer_file(monkeypatch, second, path)
    second.actions["open"].trigger()
    assert len(ask.calls) == 1 and "Open run.lexp" in ask.calls[0][1]
    # The reopened session's own snapshot (the window's earlier run showed one too).
    qtbot.waitUntil(lambda: second.state.current.snapshot is not None
                    and second.state.current.snapshot.progress.step == step
                    and second.state.current.progress is not None,
                    timeout=WAIT_MS)
    session = second.trainers.current.worker.session
    assert session.paused and session.step_count == step
    assert not second.trainers.current.wants_running
    for name, tensor in session.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    for key, values in history.items():
        np.testing.assert_array_equal(second.state.current.progress.train[key], values)
    np.testing.assert_array_equal(second.state.current.snapshot.model.encode(x)[0], mu)
    np.testing.assert_allclose(second.state.current.snapshot.mu, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(session.split.heldout, heldout)  # the .lexp keeps the split
    entries = second.encoded_panel.model.entries
    assert [e.name for e in entries] == ["first", "second"]
    assert entries[0].image.notes == ["a note"] and second.encoded_panel.selected() == 1
    np.testing.assert_array_equal(entries[1].image.input,
                                  digits.as_float([1]).reshape(digits.image_shape))
    assert second.state.selected == 7 and second.actions["sigma_2"].isChecked()
    assert second.manifold_view.mode() == "view" and second.manifold_view.grid_box.value() == 9
    x0, x1, y0, y1 = second.latent_view.view_region()
    assert x0 <= region[0] + 1e-3 and x1 >= region[1] - 1e-3
    assert y0 <= region[2] + 1e-3 and y1 >= region[3] - 1e-3
    assert second.windowTitle().startswith("run[*]") and not second.isWindowModified()
    assert second.sessions.recent_files()[0] == str(path.resolve())

    second.current_run.toggle_running()  # ready to resume: training goes on from the saved step
    qtbot.waitUntil(lambda: steps(second) > step + 10, timeout=WAIT_MS)
    qtbot.waitUntil(second.isWindowModified, timeout=WAIT_MS)


def test_cancel_keeps_the_current_run(qtbot, make_window, tmp_path, monkeypatch):
    w = make_window()
    train_then_pause(qtbot, w, more_than=5)
    path = tmp_path / "saved.lexp"
    assert w.sessions.save_session_to(path)
    w.current_run.toggle_running()
    qtbot.waitUntil(w.isWindowModified, timeout=WAIT_MS)
    worker = w.trainers.current.worker
    ask = Recorder("cancel")
    monkeypatch.setattr(w.sessions, "ask_unsaved", ask)
    assert not w.sessions.open_session(path)
    assert len(ask.calls) == 1 and w.trainers.current.worker is worker and w.isWindowModified()
    before = steps(w)
    qtbot.waitUntil(lambda: steps(w) > before + 5, timeout=WAIT_MS)

    # Dropping the session file on the window asks the same question.
    assert w.images.open_paths([str(path)]) is None and len(ask.calls) == 2
    assert w.trainers.current.worker is worker


def test_autosave_on_quit_and_the_prompt_when_it_is_off(qtbot, make_window, data_dir,
                                                         monkeypatch):
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 5, timeout=WAIT_MS)
    qtbot.waitUntil(w.isWindowModified, timeout=WAIT_MS)
    w.close()
    autosave = data_dir / "autosave.lexp"
    loaded = load_session(autosave)
    assert loaded.checkpoint.counters["step"] > 5
    # The recovery file is not a session of the user's: it stays out of the recent list.
    assert str(autosave.resolve()) not in w.sessions.recent_files()

    from explorer.qt.preferences import Preferences

    w = make_window()
    w.preferences.apply(Preferences(autosave_on_quit=False))
    qtbot.waitUntil(lambda: steps(w) > 5 and w.isWindowModified(), timeout=WAIT_MS)
    ask = Recorder("cancel")
    monkeypatch.setattr(w.sessions, "ask_unsaved", ask)
    assert not w.close() and w.isVisible() and w.trainers.current.worker.isRunning()
    assert len(ask.calls) == 1 and ask.calls[0][0] == "Quit"
    ask.answer = "discard"
    mtime = autosave.stat().st_mtime_ns
    assert w.close() and not w.trainers.current.worker.isRunning()
    assert autosave.stat().st_mtime_ns == mtime  # discarded: nothing written


def _crafted(tmp_path, good) -> list:
    not_zip = tmp_path / "not-a-zip.lexp"
    not_zip.write_bytes(b"this is not a zip archive")

    class Evil:
        def __reduce__(self):
            return (print, ("pickle ran",))

    pickled = tmp_path / "pickle.lexp"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(pickled, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "model.safetensors":
                data = pickle.dumps(Evil())
            dst.writestr(info.filename, data)

    newer = tmp_path / "newer.lexp"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(newer, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "session.json":
                meta = json.loads(data)
                meta["version"] = 99
                data = json.dumps(meta).encode()
            dst.writestr(info.filename, data)
    return [(not_zip, "not a zip"), (pickled, "model.safetensors"), (newer, "newer")]


def test_crafted_files_give_a_message_and_training_goes_on(qtbot, make_window, tmp_path,
                                                           monkeypatch, capfd):
    w = make_window()
    train_then_pause(qtbot, w, more_than=5)
    good = tmp_path / "good.lexp"
    assert w.sessions.save_session_to(good)
    w.current_run.toggle_running()
    worker = w.trainers.current.worker
    tell = Recorder()
    monkeypatch.setattr(w, "tell", tell)
    monkeypatch.setattr(w.sessions, "ask_unsaved", Recorder("discard"))
    for path, reason in _crafted(tmp_path, good):
        assert not w.sessions.open_session(path)
        title, text = tell.calls[-1]
        assert str(path) in text and reason in text and "Still training" in text, text
    assert len(tell.calls) == 3 and w.trainers.current.worker is worker
    before = steps(w)
    qtbot.waitUntil(lambda: steps(w) > before + 5, timeout=WAIT_MS)
    assert "pickle ran" not in capfd.readouterr().out


def test_exports_from_the_menu_parse_back(qtbot, make_window, tmp_path, monkeypatch, digits):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and len(w.state.current.progress.train["step"]) > 1,
                    timeout=WAIT_MS)
    train_then_pause(qtbot, w, more_than=10)
    names = {"Export latents CSV": "latents.csv", "Export latent plane PNG": "plane.png",
             "Export latent plane SVG": "plane.svg", "Export manifold PNG": "manifold.png",
             "Export history CSV": "history.csv"}
    monkeypatch.setattr(w, "save_file_name",
                        lambda title, *args: str(tmp_path / names[title]))
    tell = Recorder()
    monkeypatch.setattr(w, "tell", tell)
    shown = w.state.current.snapshot  # a later snapshot of the paused run may come meanwhile
    for a in w.menus["File/Export"].actions():
        assert a.statusTip()
        a.trigger()
    # The latents CSV is computed by a background job (its ELBOs take a while on big data).
    qtbot.waitUntil(lambda: not w.exports.latents_export_busy(), timeout=WAIT_MS)
    assert tell.calls == []

    with open(tmp_path / "latents.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == LATENT_COLUMNS and len(rows) == len(digits) + 1
    mu = np.array([[float(r[3]), float(r[4])] for r in rows[1:]])
    np.testing.assert_allclose(mu, shown.mu, rtol=1e-6, atol=1e-6)
    assert [int(r[1]) for r in rows[1:11]] == [int(v) for v in digits.labels[:10]]
    assert all(float(r[7]) < 0 for r in rows[1:])  # per-datapoint ELBO, nats

    with Image.open(tmp_path / "plane.png") as im:
        assert im.width > 100 and np.asarray(im.convert("L")).std() > 0
    root = ElementTree.parse(tmp_path / "plane.svg").getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    with Image.open(tmp_path / "manifold.png") as im:
        grey = np.asarray(im)
    assert im.mode == "L" and max(grey.shape) >= 512 and grey.std() > 0

    with open(tmp_path / "history.csv", newline="", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    train = [r for r in history if r["split"] == "train"]
    history = w.state.current.progress.train
    assert len(train) == len(history["step"])
    assert float(train[-1]["elbo"]) == pytest.approx(float(history["elbo"][-1]))


def test_recent_list_greys_missing_files_and_clears(qtbot, make_window, tmp_path):
    w = make_window(start=False)
    qtbot.waitUntil(lambda: w.trainers.current.worker.session is not None, timeout=WAIT_MS)
    kept, gone = tmp_path / "kept.lexp", tmp_path / "gone.lexp"
    assert w.sessions.save_session_to(gone) and w.sessions.save_session_to(kept)
    gone.unlink()
    w.menus["File/Open recent"].aboutToShow.emit()  # as opening the menu does
    actions = {a.toolTip(): a for a in w.menus["File/Open recent"].actions() if a.toolTip()}
    assert actions[str(kept.resolve())].isEnabled()
    assert not actions[f"{gone.resolve()} (missing)"].isEnabled()
    clear = next(a for a in w.menus["File/Open recent"].actions() if a.text() == "Clear list")
    clear.trigger()
    assert w.sessions.recent_files() == []


def test_crafted_view_state_is_ignored(qtbot, make_window):
    w = make_window(start=False)
    w.sessions.apply_view_state({"view_region": [1, 0, "x", None], "sigma_level": True,
                        "manifold_mode": "<script>", "manifold_grid": 10**9,
                        "colour_by": 3, "aggregate": "yes"})
    assert w.actions["sigma_1"].isChecked() and w.manifold_view.mode() == "prior"
    assert w.manifold_view.grid_box.value() == 15 and not w.actions["aggregate"].isChecked()
