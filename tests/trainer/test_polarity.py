"""A folder's polarity is decided once for the dataset, not per image (issue 9)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from trainer import load_source, preprocess_image, read_image
from trainer.images import ink_on_dark


def square(side: int, top: int, left: int, size: int) -> np.ndarray:
    """A black square on white, as a scan of a drawing would be."""
    img = np.full((side, side), 255, np.uint8)
    img[top:top + size, left:left + size] = 0
    return img


def write_squares(folder, n: int = 200, touching: int = 7, side: int = 16):
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        size = int(rng.integers(4, 8))
        if i % (n // touching) == 0 and i // (n // touching) < touching:
            top, left, size = 0, 0, 10  # a big square in the corner: a third of the border
        else:
            top, left = (int(v) for v in rng.integers(2, side - size - 2, 2))
        Image.fromarray(square(side, top, left, size)).save(folder / f"sq{i:03d}.png")


def test_every_image_of_a_folder_gets_the_polarity_the_dataset_votes_for(tmp_path):
    folder = tmp_path / "squares"
    write_squares(folder)
    touching = [p for p in sorted(folder.iterdir())
                if np.asarray(Image.open(p))[0].min() == 0]
    assert len(touching) == 7
    # On its own, such an image cannot tell its polarity (its border is uneven).
    assert not ink_on_dark(read_image(touching[0])[0])[1]

    dataset = load_source(folder)
    assert dataset.inverted is True
    # Bright squares on black everywhere: corners away from the squares are background (0),
    # and every image has ink.
    corners = dataset.pixels[:, [0, -1, -1], [-1, 0, -1]]
    assert (corners == 0).all()
    assert (dataset.pixels.max(axis=(1, 2)) == 255).all()
    # The squares touching the border are bright too: their ink is the top row.
    for name in (p.name for p in touching):
        img = dataset.pixels[dataset.names.index(name)]
        assert img[0, 0] == 255 and img[-1].max() == 0
    note = [n for n in dataset.notes if n.startswith("polarity")]
    assert note == ["polarity, decided for the whole dataset: of the images, 193 have dark ink "
                    "on a light background, 0 bright ink on dark and 7 cannot tell; so all "
                    "200 were inverted (bright ink on black, like MNIST)"]


def test_a_folder_of_bright_ink_on_black_is_kept_as_it_is(tmp_path):
    folder = tmp_path / "bright"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(255 - square(16, i % 8, 3, 5)).save(folder / f"b{i}.png")
    dataset = load_source(folder)
    assert dataset.inverted is False
    assert (dataset.pixels[:, -1, -1] == 0).all() and dataset.notes == []


def test_a_dropped_image_follows_the_dataset_rule():
    grey = square(16, 0, 0, 10).astype(np.float32) / 255  # ink covering a third of the border
    alone = preprocess_image(grey, (16, 16), fill=None)
    ruled = preprocess_image(grey, (16, 16), fill=None, invert=True)
    assert alone[12, 12] == 1.0 and alone[0, 5] == 0.0  # left as it was: white background
    assert ruled[12, 12] == 0.0 and ruled[0, 5] == 1.0  # the dataset's rule: inverted
    assert (preprocess_image(1 - grey, (16, 16), fill=None, invert=False) == 1 - grey).all()
