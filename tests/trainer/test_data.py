"""Dataset loaders: every source format and every bad input, on real files written here."""

from __future__ import annotations

import gzip
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.data import (
    FASHION_NAMES,
    DataError,
    LoadCancelled,
    load_digits,
    load_source,
    split_indices,
)

RNG = np.random.default_rng(0)


def idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_like(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    return (RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            RNG.integers(0, 10, n).astype(np.uint8))


def msg(e: pytest.ExceptionInfo) -> str:
    return str(e.value)


# ---------------------------------------------------------------- built-in digits and splits

def test_digits_load_by_name():
    d = load_source("digits")
    assert d.pixels.shape == (1797, 8, 8) and d.scale == 1 / 16
    assert d.label_names == [str(i) for i in range(10)]
    assert d.as_float().max() == 1.0


def test_split_is_deterministic_disjoint_and_complete():
    a, b = split_indices(1797, 0.1, seed=3), split_indices(1797, 0.1, seed=3)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.heldout, b.heldout)
    assert len(a.heldout) == 180
    assert np.array_equal(np.sort(np.concatenate([a.train, a.heldout])), np.arange(1797))
    assert not np.array_equal(split_indices(1797, 0.1, seed=4).heldout, a.heldout)
    with pytest.raises(DataError, match="need at least 2 images"):
        split_indices(1, 0.1, seed=0)


# ---------------------------------------------------------------- IDX

@pytest.mark.parametrize("images_name, labels_name", [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ("t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"),
    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte"),  # labels unzipped beside
])
def test_idx_with_labels_beside(tmp_path, images_name, labels_name):
    x, y = mnist_like()
    img = write(tmp_path / "mnist" / images_name, idx_bytes(x), images_name.endswith(".gz"))
    write(tmp_path / "mnist" / labels_name, idx_bytes(y), labels_name.endswith(".gz"))
    d = load_source(str(img))
    assert d.pixels.dtype == np.uint8 and d.scale == 1 / 255
    assert np.array_equal(d.pixels, x) and np.array_equal(d.labels, y)
    assert d.label_names == [str(i) for i in range(10)]
    assert d.pixels.flags.writeable  # torch.from_numpy must not warn


def test_idx_fashion_label_names(tmp_path):
    x, y = mnist_like()
    img = write(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz", idx_bytes(x), True)
    write(tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz", idx_bytes(y), True)
    d = load_source(img)
    assert d.label_names == FASHION_NAMES and d.label_names[0] == "T-shirt/top"


def test_idx_without_labels_is_unlabelled_with_note(tmp_path):
    x, _ = mnist_like()
    d = load_source(write(tmp_path / "train-images-idx3-ubyte", idx_bytes(x)))
    assert d.labels is None
    assert d.notes == ["unlabelled: no train-labels-idx1-ubyte or train-labels-idx1-ubyte.gz "
                       "beside it"]


def test_idx_truncated(tmp_path):
    x, _ = mnist_like(10)
    data = idx_bytes(x)[:-100]
    for gz in (False, True):
        p = write(tmp_path / f"gz{gz}" / "train-images-idx3-ubyte", data, gz)
        with pytest.raises(DataError) as e:
            load_source(p)
        assert msg(e) == (f"{p}: truncated: header says 10 x 28 x 28 (7,840 bytes of data) "
                          "but only 7,740 bytes follow")


def test_idx_truncated_gzip_stream(tmp_path):
    x, _ = mnist_like(10)
    whole = gzip.compress(idx_bytes(x))
    p = write(tmp_path / "train-images-idx3-ubyte.gz", whole[: len(whole) // 2])
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == f"{p}: truncated gzip file (it ends early)"


def test_idx_bad_magic_and_type(tmp_path):
    p = write(tmp_path / "train-images-idx3-ubyte", b"hello, not idx at all")
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == f"{p}: not an IDX file (bad magic number)"
    p = write(tmp_path / "b-idx3-ubyte", bytes([0, 0, 0x42, 3]) + b"\0" * 12)
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == f"{p}: not an IDX file (unknown type code 0x42)"


def test_idx_labels_of_wrong_length(tmp_path):
    x, y = mnist_like(50)
    img = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(x))
    lab = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(y[:49]))
    with pytest.raises(DataError) as e:
        load_source(img)
    assert msg(e) == f"{lab}: 49 labels for 50 images in train-images-idx3-ubyte"


def test_idx_labels_file_given_instead_of_images(tmp_path):
    _, y = mnist_like()
    p = write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(y))
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == f"{p}: holds labels (1-D), not images; give the images file"


def test_idx_float_data_is_sniffed_without_idx_name(tmp_path):
    x = RNG.random((5, 4, 4)).astype(">f4")
    d = load_source(write(tmp_path / "floats.bin", idx_bytes(x, 0x0D)))
    assert d.pixels.dtype == np.float32 and np.allclose(d.pixels, x)


# ---------------------------------------------------------------- .npz / .npy

@pytest.mark.parametrize("xkey, ykey", [("images", "labels"), ("x_train", "y_train"),
                                        ("X", "y"), ("data", "targets")])
def test_npz_keys(tmp_path, xkey, ykey):
    x, y = mnist_like(20)
    p = tmp_path / "set.npz"
    np.savez(p, **{xkey: x, ykey: y.astype(np.int64)})
    d = load_source(p)
    assert np.array_equal(d.pixels, x) and np.array_equal(d.labels, y)
    assert d.name == "set.npz" and d.notes == []


@pytest.mark.parametrize("shape", [(20, 28, 28), (20, 28, 28, 1), (20, 784)])
def test_npz_shapes(tmp_path, shape):
    x, _ = mnist_like(20)
    p = tmp_path / "s.npz"
    np.savez_compressed(p, images=x.reshape(shape))
    d = load_source(p)
    assert d.pixels.shape == (20, 28, 28) and np.array_equal(d.pixels, x) and d.labels is None


def test_npz_floats_in_unit_range_kept_or_compacted(tmp_path):
    x, _ = mnist_like(10)
    np.savez(tmp_path / "bytes.npz", x=x.astype(np.float32) / 255)
    d = load_source(tmp_path / "bytes.npz")
    assert d.pixels.dtype == np.uint8 and np.array_equal(d.pixels, x)  # stored compactly
    f = RNG.random((10, 6, 6)).astype(np.float64)
    np.savez(tmp_path / "float.npz", x=f)
    d = load_source(tmp_path / "float.npz")
    assert d.pixels.dtype == np.float32 and d.scale == 1.0 and np.allclose(d.pixels, f)
    assert d.notes == []


def test_npz_floats_outside_unit_range_rescaled_with_note(tmp_path):
    f = np.linspace(-1, 1, 10 * 36).reshape(10, 6, 6)
    np.savez(tmp_path / "tanh.npz", images=f)
    d = load_source(tmp_path / "tanh.npz")
    assert d.notes == ["pixels ranged -1..1: rescaled to [0, 1]"]
    assert d.as_float().min() == 0 and d.as_float().max() == pytest.approx(1)
    np.savez(tmp_path / "bytes.npz", images=np.full((3, 4, 4), 255.0))
    d = load_source(tmp_path / "bytes.npz")
    assert d.notes == ["float pixels ranged 255..255: divided by 255"]
    assert d.pixels.dtype == np.uint8 and d.as_float().max() == 1


def test_npz_string_labels_and_label_names(tmp_path):
    x, _ = mnist_like(4)
    np.savez(tmp_path / "a.npz", images=x, labels=np.array(["cat", "dog", "cat", "ant"]))
    d = load_source(tmp_path / "a.npz")
    assert d.label_names == ["ant", "cat", "dog"] and d.labels.tolist() == [1, 2, 1, 0]
    np.savez(tmp_path / "b.npz", images=x, labels=[0, 1, 1, 0], label_names=["no", "yes"])
    assert load_source(tmp_path / "b.npz").label_names == ["no", "yes"]
    np.savez(tmp_path / "c.npz", images=x, y=np.array([[3], [1], [0], [2]]))
    d = load_source(tmp_path / "c.npz")
    assert d.labels.tolist() == [3, 1, 0, 2] and d.label_names == ["0", "1", "2", "3"]


def test_npy(tmp_path):
    x, _ = mnist_like(7)
    np.save(tmp_path / "x.npy", x.reshape(7, -1))
    d = load_source(tmp_path / "x.npy")
    assert d.pixels.shape == (7, 28, 28) and d.labels is None


def test_npz_bad_inputs(tmp_path):
    x, y = mnist_like(10)
    np.savez(tmp_path / "nokey.npz", pictures=x)
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "nokey.npz")
    assert msg(e) == (f"{tmp_path / 'nokey.npz'}: no image array; expected a key named images, "
                      "x, x_train or data (found: pictures)")
    np.savez(tmp_path / "flat.npz", images=np.zeros((10, 785), np.uint8))
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "flat.npz")
    assert msg(e) == (f"{tmp_path / 'flat.npz'}: rows of 785 pixels are not square images; "
                      "expected N x H x W or N x (H*W) with a square H*W")
    np.savez(tmp_path / "short.npz", images=x, labels=y[:9])
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "short.npz")
    assert msg(e) == f"{tmp_path / 'short.npz'}: 9 labels for 10 images"
    np.savez(tmp_path / "nan.npz", images=np.full((2, 3, 3), np.nan))
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "nan.npz")
    assert msg(e) == f"{tmp_path / 'nan.npz'}: pixels contain NaN or infinite values"


def test_npz_pickle_is_refused(tmp_path):
    p = tmp_path / "pickled.npz"
    np.savez(p, images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == (f"{p}: array 'images' holds pickled Python objects, which are never "
                      "loaded (they could run code)")


def test_npz_corrupt(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError) as e:
        load_source(p)
    assert msg(e) == f"{p}: not a .npz archive (zip); the file is corrupt or of another type"
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 3)))
    q = tmp_path / "x.npy"
    q.write_bytes(q.read_bytes()[:-10])
    with pytest.raises(DataError, match=rf"^{re.escape(str(q))}: unreadable or corrupt \("):
        load_source(q)
    good = tmp_path / "good.npz"
    np.savez(good, images=np.zeros((4, 5, 5), np.uint8))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-60])
    with pytest.raises(DataError, match=rf"^{re.escape(str(cut))}: (unreadable or corrupt|array)"):
        load_source(cut)
    assert zipfile.is_zipfile(good)


# ---------------------------------------------------------------- paths and formats

def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "nope")
    assert msg(e) == f"{tmp_path / 'nope'}: no such file or folder"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "notes.txt")
    assert msg(e) == (f"{tmp_path / 'notes.txt'}: unknown format; expected a folder of images, "
                      ".npz, .npy or an IDX file such as train-images-idx3-ubyte.gz")
    Image.new("L", (4, 4)).save(tmp_path / "one.png")
    with pytest.raises(DataError) as e:
        load_source(tmp_path / "one.png")
    assert msg(e) == f"{tmp_path / 'one.png'}: a single image is not a dataset; give a folder " \
                     "of images"


# ---------------------------------------------------------------- folders

def digit_like(n: int) -> np.ndarray:
    """Bright random strokes in the middle of a black frame, like MNIST digits."""
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 6:22, 8:20] = RNG.integers(0, 256, (n, 16, 12), dtype=np.uint8)
    return x


def save_digit(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def test_folder_subfolders_are_labels(tmp_path):
    x = digit_like(6)
    for i in range(6):
        save_digit(tmp_path / ("cat" if i < 4 else "dog") / f"{i}.png", x[i])
    (tmp_path / "dog" / "deep").mkdir()
    save_digit(tmp_path / "dog" / "deep" / "9.png", x[0])
    d = load_source(tmp_path)
    assert d.label_names == ["cat", "dog"] and d.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert d.names[-1] == str(Path("dog", "deep", "9.png"))
    assert d.pixels.dtype == np.uint8 and np.array_equal(d.pixels[:6], x)


def test_folder_loose_images_unlabelled_and_numeric_order(tmp_path):
    x = digit_like(12)
    for i in range(12):
        save_digit(tmp_path / f"img{i}.png", x[i])
    d = load_source(tmp_path)
    assert d.labels is None and d.names[:3] == ["img0.png", "img1.png", "img2.png"]
    assert np.array_equal(d.pixels, x)


def test_folder_mixed_sizes_resized_to_most_common(tmp_path):
    x = digit_like(3)
    for i in range(3):
        save_digit(tmp_path / f"{i}.png", x[i])
    save_digit(tmp_path / "big.png", np.zeros((56, 40), np.uint8))
    d = load_source(tmp_path)
    assert d.image_shape == (28, 28) and len(d) == 4
    assert ("1 of 4 images were resized to 28 x 28 (the most common size), keeping their "
            "aspect ratio") in d.notes


def test_folder_bad_files_skipped_and_named(tmp_path):
    x = digit_like(2)
    save_digit(tmp_path / "good0.png", x[0])
    save_digit(tmp_path / "good1.png", x[1])
    (tmp_path / "a.png").write_text("not really a png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("hi")
    d = load_source(tmp_path)
    assert len(d) == 2 and d.names == ["good0.png", "good1.png"]
    assert d.notes == ["3 files skipped: readme.txt (not an image file type), a.png (not an "
                       "image (unknown or unsupported file type)), empty.jpg (empty file (0 "
                       "bytes))"]


def test_folder_light_background_inverted(tmp_path):
    a = np.full((28, 28), 255, np.uint8)
    a[8:20, 12:16] = 0  # a black bar on white paper
    save_digit(tmp_path / "scan.png", a)
    save_digit(tmp_path / "scan2.png", a)
    d = load_source(tmp_path)
    assert d.pixels[0, 0, 0] == 0 and d.pixels[0, 10, 13] == 255
    assert d.inverted is True
    assert d.notes == ["polarity, decided for the whole dataset: of the images, 2 have dark ink "
                       "on a light background, 0 bright ink on dark and 0 cannot tell; so all 2 "
                       "were inverted (bright ink on black, like MNIST)"]


def test_folder_empty_or_all_bad(tmp_path):
    with pytest.raises(DataError) as e:
        load_source(tmp_path)
    assert msg(e) == f"{tmp_path}: no readable images"
    (tmp_path / "x.png").write_text("nope")
    with pytest.raises(DataError) as e:
        load_source(tmp_path)
    assert msg(e) == (f"{tmp_path}: no readable images (1 file skipped: x.png (not an image "
                      "(unknown or unsupported file type)))")


def test_folder_progress_and_cancel(tmp_path):
    x = digit_like(5)
    for i in range(5):
        save_digit(tmp_path / f"{i}.png", x[i])
    seen: list[tuple[int, int]] = []
    load_source(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = iter(range(100))
    with pytest.raises(LoadCancelled) as e:
        # One poll per folder listed, 5 header reads, then 2.
        load_source(tmp_path, cancelled=lambda: next(calls) >= 8)
    assert msg(e) == f"{tmp_path}: loading cancelled after 2 of 5 files"
    assert isinstance(e.value, DataError)


def test_load_digits_unchanged():
    d = load_digits()
    assert d.source == "digits" and d.labels is not None and len(d) == 1797
