"""An image dataset (in memory, or memory-mapped from a .npy file) and its sources."""

from __future__ import annotations

import gzip
import hashlib
import mmap
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .files import require_regular_file


class DataError(ValueError):
    """Bad input data. The message names the file and the reason in one line."""


class LoadCancelled(DataError):
    """The user cancelled a long load (a folder of many images)."""


@dataclass
class ImageDataset:
    """N images of H x W, grey (``pixels`` N x H x W) or colour (N x H x W x 3, RGB).
    Pixel values are ``pixels * scale``, in [0, 1].

    ``pixels`` is kept compact (uint8 wherever the source allows), so 70,000 MNIST
    digits take 55 MB rather than 220 MB as float32. A uint8 ``.npy`` file (and the cache
    of a folder of images) stays on disk: ``pixels`` is then a read-only memory map, and
    only the rows used are read.
    """

    pixels: np.ndarray  # (N, H, W) grey or (N, H, W, 3) RGB, uint8 or float32
    scale: float
    name: str
    source: str
    labels: np.ndarray | None = None  # (N,) int64
    label_names: list[str] | None = None  # label value -> display name
    names: list[str] | None = None  # one per image, e.g. its file name
    notes: list[str] = field(default_factory=list)  # what loading changed or skipped
    # The dataset's polarity rule, applied to images dropped on it too: True, the source
    # images (dark ink on light) were all inverted; False, all kept; None, no rule (images
    # stored as they are, e.g. MNIST: a dropped image is decided by its own border).
    inverted: bool | None = None
    # Ground-truth generative factors, name -> (N,) floats, for datasets that know them
    # (the built-in sprites); None for data from elsewhere.
    factors: dict[str, np.ndarray] | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        colour = self.pixels.ndim == 4 and self.pixels.shape[3] == 3
        if not (self.pixels.ndim == 3 or colour) or len(self.pixels) == 0:
            raise DataError(f"{self.source}: expected N x H x W grey or N x H x W x 3 colour "
                            f"images, got shape {self.pixels.shape}")
        if self.labels is not None and len(self.labels) != len(self.pixels):
            raise DataError(f"{self.source}: {len(self.labels)} labels for "
                            f"{len(self.pixels)} images")

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[2]

    @property
    def channels(self) -> int:
        """Values per pixel: 1 (grey) or 3 (RGB)."""
        return 1 if self.pixels.ndim == 3 else int(self.pixels.shape[3])

    @property
    def n_pixels(self) -> int:
        """Values per image, H * W * channels: the model's D."""
        return self.pixels.shape[1] * self.pixels.shape[2] * self.channels

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """One image as an array: (H, W) grey, (H, W, 3) colour."""
        return tuple(self.pixels.shape[1:])

    @property
    def memory_mapped(self) -> bool:
        """Whether ``pixels`` is a view of a file on disk rather than memory."""
        a = self.pixels
        while a is not None:
            if isinstance(a, (np.memmap, mmap.mmap)):
                return True
            a = getattr(a, "base", None)
        return False

    def as_float(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Images as float32 in [0, 1], flattened to (n, H*W*channels)."""
        px = self.pixels if index is None else self.pixels[index]
        return (px.reshape(len(px), -1).astype(np.float32) * np.float32(self.scale))

    def fingerprint(self) -> str:
        """SHA-256 over the pixels and labels: tells whether a dataset changed. Computed
        once (a dataset's arrays are never modified after loading): every checkpoint save
        and session check asks for it, and 70,000 images take ~0.1 s to hash."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(str(self.pixels.shape).encode())
            rows = max(1, (64 << 20) // max(1, self.pixels[0].nbytes))  # 64 MB at a time
            for start in range(0, len(self.pixels), rows):  # a memory map is never read whole
                h.update(np.ascontiguousarray(self.pixels[start:start + rows]).data)
            if self.labels is not None:
                h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


@dataclass(frozen=True)
class Split:
    """A deterministic held-out split: the same (N, fraction, seed) gives the same indices."""

    train: np.ndarray
    heldout: np.ndarray
    fraction: float
    seed: int

    def describe(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed, "n_train": int(len(self.train)),
                "n_heldout": int(len(self.heldout))}


def split_indices(n: int, fraction: float, seed: int) -> Split:
    if n < 2:
        raise DataError(f"need at least 2 images to hold some out, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_heldout = min(n - 1, max(1, round(n * fraction)))
    return Split(train=np.sort(order[n_heldout:]), heldout=np.sort(order[:n_heldout]),
                 fraction=fraction, seed=seed)


def load_digits() -> ImageDataset:
    """The 1,797 8x8 handwritten digits that scikit-learn ships (UCI optdigits), grey
    levels 0..16, bundled in resources/ so no network or scikit-learn is needed."""
    ref = resources.files("resources") / "digits.npz"
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    return ImageDataset(pixels=images, scale=1 / 16, name="Built-in digits (8x8)",
                        source="digits", labels=labels.astype(np.int64),
                        label_names=[str(i) for i in range(10)])


def load_source(source: str | os.PathLike,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> ImageDataset:
    """Load a dataset named on the command line: ``digits``, ``sprites`` (colour) or
    ``sprites-grey`` (generated, trainer.sprites), a folder of images (subfolders
    are labels), a ``.npz`` / ``.npy`` file, or an IDX file as MNIST ships (``.gz`` too).

    ``progress(done, total)`` and ``cancelled()`` serve folders of many images; a cancelled
    load raises LoadCancelled.
    """
    if str(source) == "digits":
        return load_digits()
    from .sprites import SOURCES as SPRITES  # generated here, no download
    from .sprites import load_sprites

    if str(source) in SPRITES:
        return load_sprites(colour=SPRITES[str(source)], source=str(source))
    from .download import KNOWN_DATASETS  # download.py is only needed for named sets

    if str(source) in KNOWN_DATASETS:
        return load_known(str(source), progress, cancelled)
    path = Path(source)
    try:
        require_regular_file(path, DataError)  # a FIFO or device would block every reader
        exists, is_dir = path.exists(), path.is_dir()
    except PermissionError:  # a parent folder that cannot be entered
        raise DataError(f"{path}: permission denied") from None
    if not exists:
        raise DataError(f"{path}: no such file or folder")
    if is_dir:
        from .images import load_folder  # images.py builds on this module, so import late

        return load_folder(path, progress=progress, cancelled=cancelled)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".npz"]:
        return load_npz(path)
    if suffixes[-1:] == [".npy"]:
        return load_npy(path)
    if _looks_like_idx(path):
        return load_idx(path)
    from .folders import IMAGE_SUFFIXES

    if suffixes and suffixes[-1] in IMAGE_SUFFIXES:
        raise DataError(f"{path}: a single image is not a dataset; give a folder of images")
    raise DataError(f"{path}: unknown format; expected a folder of images, .npz, .npy or an "
                    "IDX file such as train-images-idx3-ubyte.gz")


# ---------------------------------------------------------------- pixels and labels


def _compact_pixels(a: np.ndarray, path: Path, notes: list[str]) -> tuple[np.ndarray, float]:
    """Any numeric image array as (uint8 with scale 1/255 where possible, else float32 in
    [0, 1], scale 1). Values outside the expected range are rescaled, with a note."""
    if a.dtype == np.bool_:
        return a.astype(np.uint8), 1.0
    if a.dtype == np.uint8:
        return a, 1 / 255
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise DataError(f"{path}: pixels must be numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise DataError(f"{path}: pixels contain NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(a.dtype, np.integer):
        if lo >= 0 and hi <= 1:
            return a.astype(np.uint8), 1.0
        if lo >= 0 and hi <= 16:
            notes.append("integer pixels 0..16: read as 17 grey levels, like scikit-learn's digits")
            return a.astype(np.uint8), 1 / 16
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8), 1 / 255
        if lo >= 0 and hi <= 65535:
            notes.append("16-bit pixels: divided by 65535")
            return (a / 65535).astype(np.float32), 1.0
    elif lo >= 0 and hi <= 1:
        as_bytes = np.rint(a * 255)
        if np.abs(as_bytes / 255 - a).max() < 1e-6:  # 8-bit data stored as floats
            return as_bytes.astype(np.uint8), 1 / 255
        return a.astype(np.float32), 1.0
    elif lo >= 0 and hi <= 255:
        notes.append(f"float pixels ranged {lo:.3g}..{hi:.3g}: divided by 255")
        return _compact_pixels((a / 255).astype(np.float32), path, [])
    notes.append(f"pixels ranged {lo:.3g}..{hi:.3g}: rescaled to [0, 1]")
    span = hi - lo if hi > lo else 1.0
    return ((a - lo) / span).astype(np.float32), 1.0


def _as_images(a: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """(N,H,W), (N,H,W,1) or (N, H*W) with a square H*W -> grey (N, H, W); (N,H,W,3) stays
    colour (RGB)."""
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 4 and a.shape[-1] == 3:
        if len(a) == 0 or a.shape[1] == 0 or a.shape[2] == 0:
            raise DataError(f"{path}: no images (shape {a.shape})")
        return a
    elif a.ndim == 2:
        side = int(round(np.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            raise DataError(f"{path}: rows of {a.shape[1]} pixels are not square images; "
                            "expected N x H x W or N x (H*W) with a square H*W")
        a = a.reshape(len(a), side, side)
    if a.ndim != 3:
        raise DataError(f"{path}: expected images shaped N x H x W, N x H x W x 1, "
                        f"N x H x W x 3 (RGB) or N x (H*W), got shape {a.shape}")
    if len(a) == 0 or a.shape[1] == 0 or a.shape[2] == 0:
        raise DataError(f"{path}: no images (shape {a.shape})")
    return a


def _as_labels(y: np.ndarray, n: int, path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 codes, plus names when the labels were strings."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:  # a column or row vector, as some tools save them
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{path}: labels must be one per image, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{path}: {len(y)} labels for {n} images")
    if y.dtype.kind in "US":
        names, codes = np.unique(y.astype(str), return_inverse=True)
        return codes.astype(np.int64), [str(s) for s in names]
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise DataError(f"{path}: labels must be whole numbers, got dtype {y.dtype}")
    codes = y.astype(np.int64)
    if len(codes) and codes.min() < 0:
        raise DataError(f"{path}: labels must not be negative (found {codes.min()})")
    return codes, None


FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]


def _default_label_names(labels: np.ndarray, path: Path) -> list[str]:
    """Fashion-MNIST's class names when the path says fashion; otherwise the numbers."""
    top = int(labels.max(initial=0))
    if "fashion" in str(path).lower() and top < len(FASHION_NAMES):
        return list(FASHION_NAMES)
    return [str(i) for i in range(top + 1)]


def _dataset(pixels: np.ndarray, path: Path, labels: np.ndarray | None,
             label_names: list[str] | None, notes: list[str]) -> ImageDataset:
    notes = list(notes)
    pixels, scale = _compact_pixels(pixels, path, notes)
    if labels is not None and label_names is None:
        label_names = _default_label_names(labels, path)
    if labels is not None and labels.max(initial=0) >= len(label_names):
        raise DataError(f"{path}: label {labels.max()} has no name "
                        f"({len(label_names)} label names)")
    return ImageDataset(pixels=np.ascontiguousarray(pixels), scale=scale, name=path.name,
                        source=str(path), labels=labels, label_names=label_names, notes=notes)


# ---------------------------------------------------------------- .npz / .npy

_IMAGE_KEYS = ("images", "x", "x_train", "data", "train_images", "arr_0")
_LABEL_KEYS = ("labels", "y", "y_train", "targets", "target", "train_labels")
_NAME_KEYS = ("label_names", "class_names", "classes")


_MAGIC = {".npz": (b"PK\x03\x04", "a .npz archive (zip)"), ".npy": (b"\x93NUMPY", "a .npy file")}


def _read_array_file(path: Path, kind: str, mmap_mode: str | None = None):
    """np.load without pickle (opening a file never runs code from it), after checking the
    magic bytes: np.load would take any other file for a pickle. ``mmap_mode="r"`` maps a
    .npy file instead of reading it."""
    magic, what = _MAGIC[kind]
    try:
        require_regular_file(path, DataError)
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: unreadable ({e.strerror or e})") from None
    if head != magic:
        raise DataError(f"{path}: not {what}; the file is corrupt or of another type")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except ValueError as e:
        if "pickle" in str(e).lower() or "python objects" in str(e).lower():
            raise DataError(f"{path}: holds pickled Python objects, which are never loaded "
                            "(they could run code); save plain numeric arrays") from None
        raise DataError(f"{path}: unreadable or corrupt ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable or corrupt ({e})") from None


def _get(npz, keys: tuple[str, ...], path: Path) -> np.ndarray | None:
    lower = {k.lower(): k for k in npz.files}
    for k in keys:
        if k in lower:
            try:
                return npz[lower[k]]
            except ValueError as e:
                if "pickle" in str(e).lower():
                    raise DataError(f"{path}: array '{lower[k]}' holds pickled Python objects, "
                                    "which are never loaded (they could run code)") from None
                raise DataError(f"{path}: array '{lower[k]}' is corrupt ({e})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(f"{path}: array '{lower[k]}' is corrupt ({e})") from None
    return None


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """Images under a key such as images / x / x_train / data, labels (optional) under
    labels / y / y_train / targets, label names (optional) under label_names / classes."""
    path = Path(path)
    npz = _read_array_file(path, ".npz")
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not a .npz archive")
    with npz:
        images = _get(npz, _IMAGE_KEYS, path)
        if images is None:
            raise DataError(f"{path}: no image array; expected a key named images, x, x_train "
                            f"or data (found: {', '.join(npz.files) or 'nothing'})")
        labels = _get(npz, _LABEL_KEYS, path)
        names = _get(npz, _NAME_KEYS, path)
    notes: list[str] = []
    images = _as_images(images, path, notes)
    label_names = None
    if labels is not None:
        labels, label_names = _as_labels(labels, len(images), path)
        if label_names is None and names is not None:
            label_names = [str(s) for s in np.asarray(names).reshape(-1)]
    return _dataset(images, path, labels, label_names, notes)


def load_npy(path: str | os.PathLike) -> ImageDataset:
    """One array of images, unlabelled. Memory-mapped, never read whole: uint8 (or bool)
    pixels stay on disk and training reads each minibatch's rows from the map; other
    types are converted, which reads them into memory (a note says so)."""
    path = Path(path)
    images = _read_array_file(path, ".npy", mmap_mode="r")
    if not isinstance(images, np.ndarray):
        raise DataError(f"{path}: not a .npy array")
    notes: list[str] = []
    images = _as_images(images, path, notes)
    if images.dtype in (np.uint8, np.bool_) and images.flags.c_contiguous:
        scale = 1.0 if images.dtype == np.bool_ else 1 / 255  # as _compact_pixels, no scan
        return ImageDataset(pixels=images.view(np.uint8), scale=scale, name=path.name,
                            source=str(path), notes=notes)
    notes.append(f"{images.dtype} pixels were read into memory (only C-ordered uint8 or bool "
                 ".npy files stay on disk)")
    return _dataset(np.asarray(images), path, None, None, notes)


# ---------------------------------------------------------------- IDX (MNIST's format)

# IDX type codes: http://yann.lecun.com/exdb/mnist/ (big-endian data after the header).
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _looks_like_idx(path: Path) -> bool:
    name = path.name.lower()
    if "idx" in name or "ubyte" in name:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_DTYPES and 1 <= head[3] <= 4


# The most data an IDX file may hold (its header says how much, before anything inflates):
# EMNIST ByClass, the largest of the family, is 0.64 GB of pixels.
MAX_IDX_BYTES = 2 * 1024**3


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Parse an IDX file: 2 zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian uint32, then the data. Gzipped files (told by their magic,
    not their name) are read as a stream: the header's sizes are checked against
    ``max_bytes`` first, and no more than they promise is ever inflated."""
    path = Path(path)
    try:
        require_regular_file(path, DataError)  # a FIFO or device would block the read
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            return _parse_idx(path, f, max_bytes)
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except EOFError:
        raise DataError(f"{path}: truncated gzip file (it ends early)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: unreadable ({e.strerror or e})") from None


def _parse_idx(path: Path, f, max_bytes: int) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (unknown type code 0x{code:02x})")
    dims_raw = f.read(4 * ndim) if 1 <= ndim <= 4 else b""
    if not 1 <= ndim <= 4 or len(dims_raw) < 4 * ndim:
        raise DataError(f"{path}: corrupt IDX header ({ndim} dimensions, "
                        f"{4 + len(dims_raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, ">u4", ndim))
    dtype = _IDX_DTYPES[code]
    want = int(np.prod(dims, dtype=object)) * dtype.itemsize
    shape = " x ".join(str(d) for d in dims)
    if want > max_bytes:
        raise DataError(f"{path}: header says {shape} ({want:,} bytes of data), more than "
                        f"the {max_bytes:,}-byte limit")
    data = f.read(want)
    if len(data) < want:
        raise DataError(f"{path}: truncated: header says {shape} ({want:,} bytes of data) "
                        f"but only {len(data):,} bytes follow")
    if f.read(1):
        raise DataError(f"{path}: corrupt: more bytes follow the {shape} data")
    # A copy, so the array is writable (torch.from_numpy warns about read-only buffers).
    return np.frombuffer(data, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _labels_beside(path: Path) -> list[Path]:
    """Where MNIST keeps the labels of an images file: train-images-idx3-ubyte(.gz) ->
    train-labels-idx1-ubyte(.gz); also the 'train-images.idx3-ubyte' spelling."""
    name = path.name.replace("images", "labels").replace("idx3", "idx1")
    if name == path.name:
        return []
    base = name[:-3] if name.lower().endswith(".gz") else name
    return [path.with_name(base), path.with_name(base + ".gz")]


def load_idx(path: str | os.PathLike) -> ImageDataset:
    """An IDX images file (MNIST, Fashion-MNIST, EMNIST), with its labels file when it lies
    beside it. 70,000 images load in well under a second."""
    path = Path(path)
    images = read_idx(path)
    if images.ndim == 1:
        raise DataError(f"{path}: holds labels (1-D), not images; give the images file")
    notes: list[str] = []
    images = _as_images(images, path, notes)
    labels = None
    candidates = _labels_beside(path)
    found = [p for p in candidates if p.is_file()]
    if found:
        raw_labels = read_idx(found[0])
        if raw_labels.ndim != 1:
            raise DataError(f"{found[0]}: expected 1-D labels, got shape {raw_labels.shape}")
        if len(raw_labels) != len(images):
            raise DataError(f"{found[0]}: {len(raw_labels):,} labels for {len(images):,} "
                            f"images in {path.name}")
        labels, _ = _as_labels(raw_labels, len(images), found[0])
    else:
        looked = " or ".join(p.name for p in candidates) or "a matching labels file"
        notes.append(f"unlabelled: no {looked} beside it")
    return _dataset(images, path, labels, None, notes)


def load_known(name: str, progress: Callable[[int, int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> ImageDataset:
    """MNIST or Fashion-MNIST, downloaded once into the user's cache: the training and
    test files joined into one set of 70,000 (our own seeded split holds some out).

    Download failures surface as DataError so every caller handles one error type.
    """
    from .download import KNOWN_DATASETS, DownloadCancelled, DownloadError, fetch_dataset

    spec = KNOWN_DATASETS[name]
    report = (lambda done, total, _message: progress(done, total)) if progress else None
    try:
        folder = fetch_dataset(name, progress=report, cancelled=cancelled)
    except DownloadCancelled as exc:
        raise LoadCancelled(str(exc)) from None
    except DownloadError as exc:
        raise DataError(str(exc)) from None
    parts = [load_idx(folder / f"{prefix}-images-idx3-ubyte.gz") for prefix in ("train", "t10k")]
    return ImageDataset(
        pixels=np.concatenate([p.pixels for p in parts]), scale=parts[0].scale,
        name=spec.title, source=name,
        labels=np.concatenate([p.labels for p in parts]), label_names=parts[0].label_names,
        notes=[f"{spec.title}: training ({len(parts[0]):,}) and test ({len(parts[1]):,}) "
               f"files joined; cached in {folder}"])
