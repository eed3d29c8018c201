"""What a drop means, and that a dropped folder is walked once, never on the GUI thread: a real
folder tree, real drops on a real window, every listing of the folder recorded."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image
from test_bring_your_own import WAIT_MS, Answers, drop, wait_training
from test_encoded_images import _digit_like

from explorer.core.intake import expand_paths, read_drop


class Listings:
    """Records every os.scandir / os.listdir of the watched folders and the thread it ran in
    (the real functions still do the work)."""

    def __init__(self, monkeypatch, *folders):
        self.folders = {os.fspath(f) for f in folders}
        self.calls: list[tuple[str, bool]] = []  # (folder, on the GUI thread)
        for name in ("scandir", "listdir"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._spy(real))

    def _spy(self, real):
        def spy(path=".", *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and os.fspath(path) in self.folders:
                self.calls.append((os.fspath(path),
                                   threading.current_thread() is threading.main_thread()))
            return real(path, *args, **kwargs)
        return spy


def _images(folder, n: int, start: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"img{i}.png" for i in range(start, start + n)]
    for i, name in enumerate(names):
        Image.fromarray(_digit_like(28, seed=start + i)).save(folder / name)
    return names


def _hidden_only(tmp_path):
    folder = tmp_path / "only_hidden"
    _images(folder / ".cache", 2)
    return folder


def test_a_drop_is_classified_from_one_walk_that_encoding_reuses(tmp_path, monkeypatch):
    loose, labelled = tmp_path / "loose", tmp_path / "labelled"
    _images(loose, 3)
    _images(labelled / "a", 2)
    _images(labelled / ".hidden", 2)  # not a label: hidden
    (tmp_path / "x.npz").write_bytes(b"")
    spy = Listings(monkeypatch, loose, labelled)

    d = read_drop([loose])
    assert d.kind == "images" and d.datasets == ()
    assert read_drop([labelled]).kind == "dataset"
    mixed = read_drop([tmp_path / "x.npz", loose])
    assert mixed.kind == "mixed" and mixed.images() == [str(loose)]
    assert read_drop([_hidden_only(tmp_path)]).kind == "images"

    before = len(spy.calls)
    files, messages = expand_paths(d.paths, d.listings)
    assert [f.name for f in files] == ["img0.png", "img1.png", "img2.png"] and messages == []
    assert len(spy.calls) == before, "expanding a walked drop walked it again"


@pytest.mark.parametrize("kind", ["images", "dataset"])
def test_a_dropped_folder_is_walked_once_off_the_gui_thread(qtbot, make_window, tmp_path,
                                                            monkeypatch, kind):
    w = make_window()
    wait_training(qtbot, w, 0)
    root = tmp_path / "dropped"
    if kind == "images":
        names = _images(root, 4)
    else:
        names = _images(root / "a", 12) + _images(root / "b", 12, start=12)
    spy = Listings(monkeypatch, root)
    w.confirm = Answers(True)
    if kind == "images":
        with qtbot.waitSignal(w.encoded_panel.job.finished, timeout=WAIT_MS):
            drop(w.latent_view.viewport(), [root])
        assert sorted(e.name for e in w.encoded_panel.model.entries) == sorted(names)
    else:
        drop(w.latent_view.viewport(), [root])
        qtbot.waitUntil(lambda: w.state.current.dataset.source == str(root), timeout=WAIT_MS)
        dataset = w.state.current.dataset
        assert len(dataset) == 24 and dataset.label_names == ["a", "b"]
    assert spy.calls == [(str(root), False)], spy.calls
