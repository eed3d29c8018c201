"""Reading user images, and THE one preprocessing step that puts them in a dataset's format.

The same ``preprocess_image`` serves image folders loaded for training, images dropped on the
GUI and the ``encode`` command, so an image always reaches the model the way the data did.

Conventions, decided here once:

- Ink is bright on a dark background, like MNIST. An image whose ink is darker than its
  border (a black-on-white scan) is inverted. A folder's polarity is decided once for the
  whole dataset (a majority vote of its images) and applied to every image, and to images
  dropped on it later; a lone image without a dataset rule is decided by its own border.
- Transparency is flattened onto white when the visible content is dark and onto black
  when it is light, so the drawing stands out from the background either way (a black
  stroke on a transparent canvas becomes black on white, then inverted to MNIST's style).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import DataError, ImageDataset, LoadCancelled
from .files import require_regular_file
from .folders import FolderListing, natural_key, walk_folder

MAX_PIXELS = 50_000_000  # larger images are refused as possible decompression bombs
MNIST_FILL = 20 / 28  # MNIST fitted each digit into a 20 x 20 box inside 28 x 28
FILLS_FRAME = 0.9  # from this fill on, centre the ink's box, not its centre of mass
INK_THRESHOLD = 0.25  # a pixel is ink above this fraction of the image's brightest level
_EXIF_ORIENTATION = 0x0112
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's convert("L")


class ImageError(DataError):
    """An image file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# ---------------------------------------------------------------- reading one image

def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) with every failure turned into an ImageError."""
    try:
        # Inside the try: stat() raises PermissionError when a parent folder is locked.
        if not path.exists():
            raise ImageError(path, "no such file")
        if path.is_dir():
            raise ImageError(path, "is a folder, not an image")
        require_regular_file(path, DataError)  # a FIFO or device would block Image.open
        if path.stat().st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except ImageError:
        raise
    except DataError as e:  # from require_regular_file: "PATH: is a named pipe (FIFO), ..."
        raise ImageError(path, str(e).removeprefix(f"{path}: ")) from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image (unknown or unsupported file type)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(path, "too large (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(path, f"unreadable image ({e})") from None
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise ImageError(path, f"too large: {w} x {h} pixels is over the {max_pixels:,}-pixel "
                               "limit (possible decompression bomb)")
    return img


def image_size(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(H, W) from the header alone, without decoding the pixels."""
    with _open(Path(path), max_pixels) as img:
        w, h = img.size
    return h, w


def read_image(path: str | os.PathLike,
               max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Any image file as grey float32 (H, W) in [0, 1], plus notes on what was changed."""
    return _read(Path(path), max_pixels, _to_grey)


def read_colour(path: str | os.PathLike,
                max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Any image file as RGB float32 (H, W, 3) in [0, 1] (a grey image in three equal
    channels), plus notes on what was changed."""
    return _read(Path(path), max_pixels, _to_rgb)


def _read(path: Path, max_pixels: int, convert) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    with _open(path, max_pixels) as img:
        n_frames = getattr(img, "n_frames", 1)
        try:
            if n_frames > 1:
                img.seek(0)
                notes.append(f"animated: used the first frame of {n_frames}")
            img.load()  # force a full decode so truncated or corrupt data fails here
            upright = img
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # a phone photo held sideways
                upright = ImageOps.exif_transpose(img)
                notes.append("rotated upright as its EXIF orientation says")
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageError(path, f"corrupt or truncated image ({e})") from None
        pixels = convert(upright, notes)
    if not np.isfinite(pixels).all():
        raise ImageError(path, "contains NaN or infinite pixel values")
    return pixels, notes


# PIL modes that hold one value per pixel: their images can only be grey.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def _to_rgb(img: Image.Image, notes: list[str]) -> np.ndarray:
    if img.mode in _GREY_MODES:
        return np.repeat(_to_grey(img, notes)[..., None], 3, axis=-1)
    has_alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), np.float32) / 255
    rgb = rgba[..., :3]
    if has_alpha:  # onto the background the grey rule picks, for every channel alike
        alpha = rgba[..., 3]
        background = _alpha_background(rgb @ _LUMA, alpha, notes)
        if background is not None:
            rgb = alpha[..., None] * rgb + (1 - alpha[..., None]) * background
    return np.clip(rgb, 0, 1)


# A pixel is coloured when its channels differ by more than this (JPEG noise on a grey
# image stays within a few levels); an image is colour when over COLOURED_SHARE of its
# pixels are.
COLOUR_SPREAD = 16 / 255
COLOURED_SHARE = 0.01


def has_colour(rgb: np.ndarray) -> bool:
    """Whether an RGB image (H, W, 3) in [0, 1] is visibly coloured, not grey in RGB."""
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return bool((spread > COLOUR_SPREAD).mean() > COLOURED_SHARE)


def image_has_colour(path: str | os.PathLike) -> bool:
    """Whether an image file is colour: single-channel modes are told from the header."""
    with _open(Path(path), MAX_PIXELS) as img:
        if img.mode in _GREY_MODES:
            return False
    return has_colour(read_colour(path)[0])


def _to_grey(img: Image.Image, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float32)
        top = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
        notes.append("16-bit greyscale: scaled to [0, 1]")
        return np.clip(a / top, 0, 1)
    if mode == "F":
        a = np.asarray(img, np.float32)
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            notes.append(f"float pixels ranged {lo:.3g}..{hi:.3g}: rescaled to [0, 1]")
            return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return a
    if mode == "1":
        return np.asarray(img, np.float32)
    if mode == "L" and "transparency" not in img.info:
        return np.asarray(img, np.float32) / 255
    has_alpha = "A" in mode or "a" in mode or "transparency" in img.info
    rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), np.float32) / 255
    grey = rgba[..., :3] @ _LUMA
    if has_alpha:
        grey = _flatten_alpha(grey, rgba[..., 3], notes)
    return np.clip(grey, 0, 1)


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray, notes: list[str]) -> np.ndarray:
    background = _alpha_background(grey, alpha, notes)
    if background is None:
        return grey
    return alpha * grey + (1 - alpha) * background


def _alpha_background(grey: np.ndarray, alpha: np.ndarray, notes: list[str]) -> float | None:
    """What transparency is flattened onto (None: nothing is transparent), with a note."""
    if alpha.min() >= 1:
        return None
    seen = float(alpha.sum())
    if seen == 0:
        notes.append("fully transparent: nothing to see")
        return 0.0
    dark_content = float((grey * alpha).sum()) / seen < 0.5
    notes.append("transparency flattened onto "
                 + ("white (the visible content is dark)" if dark_content
                    else "black (the visible content is light)"))
    return 1.0 if dark_content else 0.0


# ---------------------------------------------------------------- the one preprocessing

def _border(grey: np.ndarray) -> np.ndarray:
    w = max(1, min(grey.shape) // 20)
    return np.concatenate([grey[:w].ravel(), grey[-w:].ravel(),
                           grey[:, :w].ravel(), grey[:, -w:].ravel()])


def dark_ink_vote(grey: np.ndarray) -> bool | None:
    """Whether this image has dark ink on a light background (True), bright ink on dark
    (False), or cannot tell (None: an uneven border, e.g. ink touching it, or a photo).

    The border's median is the background; the mean over the whole image leans towards the
    ink, whatever its size, so comparing the two tells the ink's polarity without a threshold.
    """
    q1, background, q3 = np.quantile(_border(grey), [0.25, 0.5, 0.75])
    if q3 - q1 > 0.25:
        return None
    return bool(grey.mean() < background)


def ink_on_dark(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Invert one image when its ink is darker than its even border; returns (image,
    inverted). Photos, noise and ink touching the border are left alone."""
    if dark_ink_vote(grey):
        return 1 - grey, True
    return grey, False


POLARITY_SAMPLE = 1000  # images that vote on a folder's polarity (all, in smaller folders)


def dataset_polarity(votes: list[bool | None]) -> bool:
    """A dataset's rule from its images' votes: invert every image when most of those that
    can tell have dark ink on light (ties and no votes: keep)."""
    dark = sum(v is True for v in votes)
    return dark > sum(v is False for v in votes)


def _resize(img: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of a float image: area averaging to shrink, Lanczos to enlarge."""
    h, w = size_hw
    if (h, w) == img.shape:
        return img.astype(np.float32, copy=False)
    shrink = h <= img.shape[0] and w <= img.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS
    out = Image.fromarray(np.ascontiguousarray(img, np.float32), mode="F").resize((w, h), method)
    return np.clip(np.asarray(out, np.float32), 0, 1)


def _fit_size(hw: tuple[int, int], box: tuple[float, float]) -> tuple[int, int]:
    """Largest size with the aspect ratio of ``hw`` that fits in ``box`` (at least 1 x 1)."""
    s = min(box[0] / hw[0], box[1] / hw[1])
    return (min(round(box[0]), max(1, round(hw[0] * s))),
            min(round(box[1]), max(1, round(hw[1] * s))))


def _paste(patch: np.ndarray, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Put ``patch`` on a black canvas so that its point ``centre`` lands mid-canvas, moved
    back inside the frame when that would cut the patch off."""
    H, W = shape
    h, w = patch.shape
    top = min(max(round((H - 1) / 2 - centre[0]), 0), H - h)
    left = min(max(round((W - 1) / 2 - centre[1]), 0), W - w)
    canvas = np.zeros(shape, np.float32)
    canvas[top:top + h, left:left + w] = patch
    return canvas


def ink_bbox(grey: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and columns holding ink (above INK_THRESHOLD of the brightest level), or None."""
    top = float(grey.max(initial=0))
    if top <= 0:
        return None
    mask = grey > INK_THRESHOLD * top
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def preprocess_image(grey: np.ndarray, shape: tuple[int, int],
                     fill: float | None = MNIST_FILL, invert: bool | None = None) -> np.ndarray:
    """Turn a grey image (float in [0, 1]) into float32 ``shape`` in a dataset's format.

    Bright ink on black (inverted if needed); background lowered to 0 and the ink's peak
    raised to 1; cropped to the ink; fitted, aspect kept, into a box of ``fill`` x ``shape``;
    centred as the datasets were made: by centre of mass when there is room around the box
    (MNIST), by the box itself when it nearly fills the frame (scikit-learn's 8x8 digits).
    ``fill=None`` keeps the whole frame instead (image folders: only the polarity and, when it
    differs, the size change). A blank image gives zeros. ``invert``: the dataset's polarity
    rule (True inverts, False keeps); None decides from this image's own border.
    """
    grey = np.asarray(grey, np.float32)
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"expected a non-empty 2-D grey image, got shape {grey.shape}")
    grey = np.clip(grey, 0, 1)
    if invert is None:
        grey, _ = ink_on_dark(grey)
    elif invert:
        grey = 1 - grey
    if fill is None:
        size = _fit_size(grey.shape, shape)
        patch = _resize(grey, size)
        return _paste(patch, shape, ((size[0] - 1) / 2, (size[1] - 1) / 2))
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    background, peak = float(np.median(_border(grey))), float(grey.max())
    if peak - background < 1e-3:
        return np.zeros(shape, np.float32)
    grey = np.clip((grey - background) / (peak - background), 0, 1)
    rows, cols = ink_bbox(grey)
    crop = grey[rows, cols]
    patch = _resize(crop, _fit_size(crop.shape, (fill * shape[0], fill * shape[1])))
    mass = patch.sum()
    ys, xs = np.indices(patch.shape)
    com = np.array([(ys * patch).sum() / mass, (xs * patch).sum() / mass])
    if fill >= FILLS_FRAME:
        box = (np.array(patch.shape) - 1) / 2
        com = box + 0.01 * (com - box)  # the box's centre; the mass only breaks half-pixel ties
    return _paste(patch, shape, (float(com[0]), float(com[1])))


def preprocess_colour(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An RGB image (float in [0, 1], H x W x 3) in a colour dataset's format: the whole
    frame fitted, aspect kept, into ``shape`` and centred on black, float32 (h, w, 3). No
    polarity rule and no crop to the ink: colour images are pictures, not ink drawings."""
    rgb = np.clip(np.asarray(rgb, np.float32), 0, 1)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty H x W x 3 colour image, got shape {rgb.shape}")
    size = _fit_size(rgb.shape[:2], shape)
    centre = ((size[0] - 1) / 2, (size[1] - 1) / 2)
    return np.stack([_paste(_resize(rgb[..., c], size), shape, centre) for c in range(3)],
                    axis=-1)


def prepare_image(path: str | os.PathLike, shape: tuple[int, int], channels: int = 1,
                  fill: float | None = MNIST_FILL) -> tuple[np.ndarray, list[str]]:
    """Read any image file and bring it to a dataset's format: grey (H, W) through
    ``preprocess_image`` (with ``fill``), or RGB (H, W, 3) through ``preprocess_colour``
    when the dataset has 3 channels (a grey file then fills all three alike, and a colour
    file given to a grey dataset becomes its luma). The one function behind dropped images
    and the ``encode`` command."""
    if channels == 3:
        rgb, notes = read_colour(path)
        return preprocess_colour(rgb, shape), notes
    if channels != 1:
        raise ValueError(f"images have 1 (grey) or 3 (RGB) channels, not {channels}")
    grey, notes = read_image(path)
    return preprocess_image(grey, shape, fill=fill), notes


# ---------------------------------------------------------------- matching a loaded dataset

def fit_fraction(dataset: ImageDataset, sample: int = 1000) -> float:
    """Typical size of the ink's bounding box relative to the frame (its longer side), the
    median over an evenly spaced sample: ~0.71 for MNIST, ~1.0 for the 8x8 digits."""
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(sample, len(dataset))).astype(int))
    H, W = dataset.image_shape
    x = dataset.as_float(idx).reshape(len(idx), H, W, dataset.channels).max(axis=-1)
    top = x.max(axis=(1, 2), keepdims=True)
    mask = (x > INK_THRESHOLD * top) & (top > 0)
    rows, cols = mask.any(2), mask.any(1)
    inked = rows.any(1)
    if not inked.any():
        return 1.0
    rows, cols = rows[inked], cols[inked]

    def extent(m: np.ndarray) -> np.ndarray:  # last inked index - first inked index + 1
        n = m.shape[1]
        return n - np.argmax(m[:, ::-1], axis=1) - np.argmax(m, axis=1)

    frac = np.maximum(extent(rows) / H, extent(cols) / W)
    return float(np.clip(np.median(frac), 0.05, 1.0))


def load_image_for(path: str | os.PathLike,
                   dataset: ImageDataset) -> tuple[np.ndarray, list[str]]:
    """Read any image and preprocess it to match ``dataset``: float32 (H, W) grey or
    (H, W, 3) colour, as the dataset is, and notes."""
    fill = fit_fraction(dataset) if dataset.channels == 1 else None
    return prepare_image(path, dataset.image_shape, dataset.channels, fill)


# ---------------------------------------------------------------- a folder of images

def _skipped_note(skipped: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{name} ({why})" for name, why in skipped[:5])
    more = f", and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    s = "s" if len(skipped) != 1 else ""
    return f"{len(skipped)} file{s} skipped: {shown}{more}"


# Folders with at least this many images are indexed once into the cache (see below).
CACHE_MIN_IMAGES = 500
CACHE_FORMAT = 2  # bump when the preprocessing changes, so old caches are not used


def load_folder(folder: str | os.PathLike,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None,
                cache_min_images: int = CACHE_MIN_IMAGES,
                listing: FolderListing | None = None) -> ImageDataset:
    """A folder of images: subfolder names become labels, loose files are unlabelled
    (trainer.folders: which files, in which order; ``listing``: its walk, when the caller
    made it already, as a drop is classified, so the folder is walked once).

    Unreadable files are skipped and named in a note; images of another size are fitted
    (aspect kept) to the most common size; light-background images are inverted. Pixels are
    stored as uint8 (scale 1/255), the precision of nearly every image file.

    A folder of ``cache_min_images`` or more images is read once into the user's cache
    (``<cache>/folders/<key>``: the pixels as a uint8 .npy, labels and names beside it),
    keyed by every file's name, size and modification time; later loads list the folder
    and open that cache memory-mapped instead of decoding the images again.
    """
    folder = Path(folder)
    if listing is None:
        listing = walk_folder(folder, cancelled)
    if len(listing.images()) < cache_min_images:
        return _read_folder(folder, listing, progress, cancelled)
    key = _cache_key(folder, listing)
    where = folder_cache_dir() / key
    cached = _open_cache(where, folder)
    if cached is not None:
        return cached
    dataset = _read_folder(folder, listing, progress, cancelled)
    _write_cache(where, dataset)
    return dataset


def folder_cache_dir() -> Path:
    """``<user cache>/folders``; LATENT_EXPLORER_CACHE moves the root, as for downloads."""
    import platformdirs

    from .download import CACHE_ENV

    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("latent-explorer")
    return Path(root) / "folders"


def _cache_key(folder: Path, listing: FolderListing) -> str:
    h = hashlib.sha256(f"{CACHE_FORMAT}\0{folder.resolve()}".encode())
    prefix = str(folder) + os.sep  # absent when folder is "."

    def rel(p: Path) -> str:
        s = str(p)
        return s[len(prefix):] if s.startswith(prefix) else s

    for p, label in listing.images():
        try:
            st = os.stat(p)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "unreadable"
        h.update(f"\0{rel(p)}\0{label}\0{stamp}".encode())
    for p in listing.others():
        h.update(f"\0other:{rel(p)}".encode())
    for p, _ in listing.unlisted:
        h.update(f"\0unlisted:{rel(p)}".encode())
    return h.hexdigest()[:40]


def _open_cache(where: Path, folder: Path) -> ImageDataset | None:
    """The cached dataset, memory-mapped, or None when there is no usable cache. Named as
    ``folder`` is now spelled (the key is the same for a relative or absolute path)."""
    try:
        meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
        pixels = np.load(where / "pixels.npy", mmap_mode="r", allow_pickle=False)
        labels = (np.load(where / "labels.npy", allow_pickle=False)
                  if meta["labelled"] else None)
        return ImageDataset(pixels=pixels, scale=meta["scale"], name=folder.name or str(folder),
                            source=str(folder), labels=labels,
                            label_names=meta["label_names"], names=meta["names"],
                            notes=meta["notes"] + [f"opened from the cache in {where}"],
                            inverted=meta["inverted"])
    except (OSError, ValueError, KeyError, TypeError, DataError):
        return None  # no cache yet, or a damaged one: read the folder again


def _write_cache(where: Path, dataset: ImageDataset) -> None:
    """Write the cache beside its final place, then rename it there (atomic); a cache
    that cannot be written only costs the next run the same reading time."""
    tmp = None
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{where.name}-", dir=where.parent))
        np.save(tmp / "pixels.npy", np.ascontiguousarray(dataset.pixels, np.uint8))
        if dataset.labels is not None:
            np.save(tmp / "labels.npy", dataset.labels)
        meta = {"format": CACHE_FORMAT, "name": dataset.name, "source": dataset.source,
                "inverted": dataset.inverted,
                "scale": dataset.scale, "labelled": dataset.labels is not None,
                "label_names": dataset.label_names, "names": dataset.names,
                "notes": dataset.notes}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if where.exists():
            if _open_cache(where, Path(dataset.source)) is not None:
                return  # another process wrote it meanwhile
            shutil.rmtree(where, ignore_errors=True)  # a damaged cache: replace it
        os.replace(tmp, where)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _colour_or_false(path: Path) -> bool:
    try:
        return image_has_colour(path)
    except ImageError:
        return False  # skipped below, with its reason


def _read_folder(folder: Path, listing: FolderListing,
                 progress: Callable[[int, int], None] | None,
                 cancelled: Callable[[], bool] | None) -> ImageDataset:
    """Decode every image of the folder (see load_folder)."""
    items = listing.images()
    skipped: list[tuple[str, str]] = [(str(p.relative_to(folder)), "not an image file type")
                                      for p in listing.others()]
    skipped += [(str(p.relative_to(folder)) + os.sep, f"folder not listed: {why}")
                for p, why in listing.unlisted]
    total = len(items)

    def check_cancel(done: int) -> None:
        if cancelled is not None and cancelled():
            raise LoadCancelled(f"{folder}: loading cancelled after {done} of {total} files")

    # Pass 1 reads headers only, so the common size is known before any pixels are kept.
    sizes: list[tuple[int, int] | None] = []
    for i, (p, _) in enumerate(items):
        check_cancel(i)
        try:
            sizes.append(image_size(p))
        except ImageError as e:
            sizes.append(None)
            skipped.append((str(p.relative_to(folder)), e.reason))
    counts = Counter(s for s in sizes if s is not None)
    if not counts:
        why = f" ({_skipped_note(skipped)})" if skipped else ""
        raise DataError(f"{folder}: no readable images{why}")
    shape = counts.most_common(1)[0][0]

    # The polarity is the dataset's, decided once: images whose ink touches the border
    # cannot tell on their own and would otherwise stay the other way round.
    readable = [i for i, size in enumerate(sizes) if size is not None]
    voters = [readable[int(k)] for k in
              np.unique(np.linspace(0, len(readable) - 1, min(POLARITY_SAMPLE, len(readable)))
                        .astype(int))]
    votes = []
    for k, i in enumerate(voters):
        check_cancel(k)
        try:
            votes.append(dark_ink_vote(read_image(items[i][0])[0]))
        except ImageError:
            votes.append(None)  # skipped below, with its reason
    invert = dataset_polarity(votes)
    # Colour when any sampled image is: a grey image loses nothing in three equal channels,
    # a colour one would lose its colours in grey.
    n_coloured = sum(_colour_or_false(items[i][0]) for i in voters)
    colour = n_coloured > 0
    if colour:
        invert = False  # the polarity rule is for grey ink; colours are kept as they are

    pixels = np.zeros((total, *shape, 3) if colour else (total, *shape), np.uint8)
    kept: list[int] = []
    n_resized = 0
    for i, (p, _) in enumerate(items):
        check_cancel(i)
        if progress is not None:
            progress(i, total)
        if sizes[i] is None:
            continue
        try:
            image, _notes = (read_colour if colour else read_image)(p)
        except ImageError as e:
            skipped.append((str(p.relative_to(folder)), e.reason))
            continue
        if invert:
            image = 1 - image
        if image.shape[:2] != shape:
            n_resized += 1
            image = (preprocess_colour(image, shape) if colour
                     else preprocess_image(image, shape, fill=None, invert=False))
        pixels[len(kept)] = np.rint(image * 255)
        kept.append(i)
    if progress is not None:
        progress(total, total)
    if not kept:
        raise DataError(f"{folder}: no readable images ({_skipped_note(skipped)})")

    notes: list[str] = []
    if skipped:
        notes.append(_skipped_note(skipped))
    if n_resized:
        notes.append(f"{n_resized} of {len(kept)} images were resized to {shape[0]} x "
                     f"{shape[1]} (the most common size), keeping their aspect ratio")
    n_dark, n_bright = votes.count(True), votes.count(False)
    asked = f"{len(votes)} sampled images" if len(votes) < len(readable) else "the images"
    if colour:
        notes.append(f"colour: {n_coloured} of {len(voters)} sampled images are coloured, so "
                     f"all {len(kept)} were kept in RGB (the polarity rule is for grey ink "
                     "and was not applied)")
    elif invert or n_dark:  # say so when pixels changed, or some images were the other way
        notes.append(f"polarity, decided for the whole dataset: of {asked}, {n_dark} have dark "
                     f"ink on a light background, {n_bright} bright ink on dark and "
                     f"{len(votes) - n_dark - n_bright} cannot tell; "
                     + (f"so all {len(kept)} were inverted (bright ink on black, like MNIST)"
                        if invert else f"so all {len(kept)} were kept as they are"))
    labels = label_names = None
    folder_labels = [items[i][1] for i in kept]
    if any(lab is not None for lab in folder_labels):
        loose = "(no label)"
        label_names = sorted({lab for lab in folder_labels if lab is not None}, key=natural_key)
        if None in folder_labels:
            label_names.append(loose)
            n_loose = folder_labels.count(None)
            notes.append(f"{n_loose} images lie directly in the folder, beside the label "
                         f"subfolders: labelled '{loose}'")
        index = {name: k for k, name in enumerate(label_names)}
        labels = np.array([index[lab if lab is not None else loose] for lab in folder_labels],
                          np.int64)
    return ImageDataset(pixels=pixels[:len(kept)], scale=1 / 255, name=folder.name or str(folder),
                        source=str(folder), labels=labels, label_names=label_names,
                        names=[str(items[i][0].relative_to(folder)) for i in kept], notes=notes,
                        inverted=invert)
