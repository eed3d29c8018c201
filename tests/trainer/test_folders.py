"""The one folder walker: its hidden-file rule, labels, order and links, on a real tree, and the
same answer for a folder dataset and for a folder of images to encode."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from trainer import load_folder
from trainer.data import LoadCancelled
from trainer.folders import is_hidden, walk_folder


def _png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    a = np.zeros((10, 10), np.uint8)
    a[2:8, 3 + seed % 3] = 255
    a[rng.integers(0, 10), rng.integers(0, 10)] = 128
    Image.fromarray(a).save(path)


@pytest.fixture
def tree(tmp_path):
    """A hidden root holding labelled subfolders, loose files and hidden things at every
    level below the root."""
    root = tmp_path / ".my data"  # the root's own name never hides it
    visible = ["img10.png", "img2.png", "a/img1.png", "a/deep/er/x.png", "b/img3.png"]
    hidden = [".loose.png", ".git/a.png", "a/.cache/y.png", "a/deep/.z.png", "._b/img.png",
              "b/.thumbs/deep/t.png"]
    for i, rel in enumerate(visible + hidden):
        _png(root / rel, i)
    (root / "notes.txt").write_text("not an image")
    (root / "a" / ".notes.txt").write_text("hidden, not an image")
    return root


def test_a_name_starting_with_a_dot_below_the_root_is_hidden_at_any_level(tree):
    listing = walk_folder(tree)
    rel = [(str(p.relative_to(tree)), label) for p, label in listing.images()]
    assert rel == [(os.path.join("a", "deep", "er", "x.png"), "a"),
                   (os.path.join("a", "img1.png"), "a"),
                   (os.path.join("b", "img3.png"), "b"),
                   ("img2.png", None), ("img10.png", None)]  # natural order, by name
    assert [p.name for p in listing.others()] == ["notes.txt"]
    assert listing.labelled() and listing.unlisted == ()
    assert is_hidden(".git") and is_hidden("._b") and not is_hidden("a.b")


def test_the_folder_dataset_reads_what_the_walk_lists(tree, tmp_path):
    listing = walk_folder(tree)
    dataset = load_folder(tree, listing=listing)
    assert dataset.names == [str(p.relative_to(tree)) for p, _ in listing.images()]
    assert sorted(dataset.label_names) == ["(no label)", "a", "b"]
    assert any("notes.txt (not an image file type)" in n for n in dataset.notes)
    assert load_folder(tree).names == dataset.names, "walking again finds the same files"


def test_links_are_followed_and_a_loop_ends(tmp_path):
    root = tmp_path / "root"
    _png(root / "a" / "one.png", 0)
    _png(tmp_path / "elsewhere" / "two.png", 1)
    os.symlink(tmp_path / "elsewhere", root / "b")  # a linked label folder counts
    os.symlink(root, root / "a" / "loop")  # back to the root: walked once only
    os.symlink(tmp_path / "missing.png", root / "broken.png")  # a broken link is left out
    listing = walk_folder(root)
    assert [(p.name, label) for p, label in listing.images()] == [("one.png", "a"),
                                                                  ("two.png", "b")]


def test_the_walk_polls_cancel_per_folder(tree):
    with pytest.raises(LoadCancelled, match="listing cancelled"):
        walk_folder(tree, cancelled=lambda: True)
