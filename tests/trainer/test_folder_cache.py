"""A folder of many images is indexed once into a memory-mapped cache."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from trainer.images import folder_cache_dir, load_folder


def write_folder(folder, n: int = 24):
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.zeros((10, 10), np.uint8)
        top, left = rng.integers(0, 6, 2)
        img[top:top + 4, left:left + 4] = 200 + i
        Image.fromarray(img).save(folder / ("a", "b")[i % 2] / f"im{i:02d}.png")


def test_a_folder_is_read_once_then_opened_memory_mapped_from_the_cache(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    write_folder(folder)
    steps: list[tuple[int, int]] = []
    first = load_folder(folder, progress=lambda d, t: steps.append((d, t)), cache_min_images=10)
    assert steps[-1] == (24, 24) and not first.memory_mapped
    assert len(list(folder_cache_dir().iterdir())) == 1

    steps.clear()
    second = load_folder(folder, progress=lambda d, t: steps.append((d, t)),
                         cache_min_images=10)
    assert steps == []  # no image decoded again
    assert second.memory_mapped
    assert (second.pixels == first.pixels).all() and second.pixels.dtype == np.uint8
    assert (second.labels == first.labels).all() and second.label_names == ["a", "b"]
    assert second.names == first.names and second.inverted == first.inverted
    assert second.fingerprint() == first.fingerprint()
    assert second.notes[-1].startswith("opened from the cache in ")

    # A changed file (new mtime) is a different folder: read again, cached anew.
    changed = folder / "a" / "im00.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_folder(folder, cache_min_images=10)
    assert not third.memory_mapped and (third.pixels[0] == 255).all()
    assert len(list(folder_cache_dir().iterdir())) == 2

    # A damaged cache is read around, never trusted.
    for entry in folder_cache_dir().iterdir():
        (entry / "pixels.npy").write_bytes(b"\x93NUMPY broken")
    fourth = load_folder(folder, cache_min_images=10)
    assert not fourth.memory_mapped and (fourth.pixels == third.pixels).all()
    assert load_folder(folder, cache_min_images=10).memory_mapped  # and rewritten


def test_small_folders_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "images"
    write_folder(folder, n=6)
    assert not load_folder(folder).memory_mapped
    assert not folder_cache_dir().exists()
