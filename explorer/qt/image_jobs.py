"""Reading the images a user brings (files, folders, the clipboard) without freezing the GUI.

Every image goes through the trainer's one preprocessing function, so it reaches the model the
way the dataset did. Reading runs on a worker thread (superqt's ``thread_worker``), one file at
a time: each file reports progress, a bad file becomes a "file: reason" message and the others
go on, and a cancel stops at the next file.

What a drop is (``classify_drop``), decided here once:

- "dataset": exactly one path, and it is a ``.npz`` / ``.npy`` file, an IDX file (a name with
  "idx" or "ubyte" in it, ``.gz`` too), or a folder with at least one subfolder holding images
  (subfolders are labels, as ``trainer.load_folder`` reads them). The window offers to train on it.
- "images": anything else with no dataset candidate in it: image files, folders of loose images,
  and files that turn out not to be images (they get a message each when read).
- "mixed": a dataset candidate together with other paths, or several dataset candidates.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QImage
from superqt.utils import GeneratorWorker

from trainer import IMAGE_SUFFIXES, DataError, ink_on_dark, preprocess_image, read_image

KEPT_SIDE = 256  # the grey original is kept at most this big: a thumbnail and re-preprocessing
DATASET_SUFFIXES = (".npz", ".npy")


@dataclass
class PreparedImage:
    """One user image, read and preprocessed for the current dataset."""

    name: str  # what the list and the plane show: the file name, or "pasted image N"
    source: str | None  # the file's path; None for a pasted image
    grey: np.ndarray  # uint8 (h, w), the original in grey, at most KEPT_SIDE px a side
    input: np.ndarray  # float32 (H, W) in [0, 1]: exactly what the model is given
    notes: list[str] = field(default_factory=list)  # what reading changed, e.g. "animated: ..."


def _kept_grey(grey: np.ndarray) -> np.ndarray:
    """The grey original shrunk (area averaging) to at most KEPT_SIDE a side, as uint8."""
    h, w = grey.shape
    s = min(1.0, KEPT_SIDE / max(h, w))
    img = Image.fromarray(np.rint(np.clip(grey, 0, 1) * 255).astype(np.uint8))
    if s < 1:
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return np.asarray(img, np.uint8).copy()


def prepare_grey(grey: np.ndarray, name: str, source: str | None, shape: tuple[int, int],
                 fill: float | None, notes: list[str] | None = None) -> PreparedImage:
    notes = list(notes or [])
    if ink_on_dark(np.clip(grey, 0, 1))[1]:  # the test preprocess_image applies, told here
        notes.append("light background: inverted to bright ink on black, as the data")
    return PreparedImage(name=name, source=source, grey=_kept_grey(grey),
                         input=preprocess_image(grey, shape, fill), notes=notes)


def prepare_file(path: str | os.PathLike, shape: tuple[int, int],
                 fill: float | None) -> PreparedImage:
    """Read and preprocess one file; raises trainer.ImageError naming the file and reason."""
    grey, notes = read_image(path)
    return prepare_grey(grey, Path(path).name, str(path), shape, fill, notes)


def prepare_qimage(image: QImage, name: str, shape: tuple[int, int],
                   fill: float | None) -> PreparedImage:
    """A clipboard image: written as PNG to a temporary folder and read like any file, so
    alpha, 16-bit and palette images are handled exactly as read_image handles them."""
    if image.isNull():
        raise DataError(f"{name}: the clipboard holds no image")
    with tempfile.TemporaryDirectory(prefix="latent-explorer-") as tmp:
        path = Path(tmp) / "pasted.png"
        if not image.save(str(path), "PNG"):
            raise DataError(f"{name}: could not convert the clipboard image to PNG")
        grey, notes = read_image(path)
    return prepare_grey(grey, name, None, shape, fill, notes)


# ---------------------------------------------------------------- which paths, which kind

def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(p))]


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def expand_paths(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Files to read, and messages about what was left out.

    A path given by itself is always read (a text file named .png gets its own message); a
    folder is searched recursively for IMAGE_SUFFIXES files, hidden ones skipped.
    """
    files: list[Path] = []
    messages: list[str] = []
    for raw in paths:
        p = Path(raw)
        try:
            is_dir = p.is_dir()
        except OSError:  # a locked parent folder: read_image says so for the file
            is_dir = False
        if not is_dir:
            files.append(p)  # a missing or unreadable file gets its message when read
            continue
        found, others, listed = [], 0, True
        try:
            for q in p.rglob("*"):
                if _hidden(q, p) or not q.is_file():
                    continue
                if q.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(q)
                else:
                    others += 1
        except OSError as e:
            messages.append(f"{p}: could not list the folder ({e.strerror or e})")
            listed = False
        if listed and not found:
            messages.append(f"{p}: no image files in this folder")
        elif others:
            messages.append(f"{p}: {others} file(s) skipped (not an image file type)")
        files.extend(sorted(found, key=_natural_key))
    return files, messages


def is_dataset_candidate(path: str | os.PathLike) -> bool:
    p = Path(path)
    try:
        is_dir = p.is_dir()
    except OSError:
        return False
    if is_dir:
        try:
            return any(sub.is_dir() and not sub.name.startswith(".")
                       and any(q.suffix.lower() in IMAGE_SUFFIXES for q in sub.rglob("*"))
                       for sub in p.iterdir())
        except OSError:
            return False  # an unreadable folder: reading it as images reports why
    name = p.name.lower()
    return name.endswith(DATASET_SUFFIXES) or "idx" in name or "ubyte" in name


def classify_drop(paths: Iterable[str | os.PathLike]) -> str:
    """"images", "dataset" or "mixed"; the rule is in this module's docstring."""
    paths = list(paths)
    candidates = sum(is_dataset_candidate(p) for p in paths)
    if candidates == 0:
        return "images"
    return "dataset" if len(paths) == 1 else "mixed"


# ---------------------------------------------------------------- the background job

@dataclass
class JobUpdate:
    """What the worker yields after each file: progress, and the file's image or message."""

    done: int
    total: int
    image: PreparedImage | None = None
    message: str | None = None


def iter_prepared(paths: Iterable[str | os.PathLike], shape: tuple[int, int],
                  fill: float | None) -> Iterator[JobUpdate]:
    """The work itself, plain Python: expand folders, then read one file per step."""
    files, messages = expand_paths(paths)
    total = len(files)
    for m in messages:
        yield JobUpdate(0, total, message=m)
    yield JobUpdate(0, total)
    for i, path in enumerate(files):
        try:
            yield JobUpdate(i + 1, total, image=prepare_file(path, shape, fill))
        except DataError as e:  # ImageError is one: "file: reason" already
            yield JobUpdate(i + 1, total, message=str(e))
        except Exception as e:  # noqa: BLE001 - one odd file must never stop the others
            yield JobUpdate(i + 1, total, message=f"{path}: unexpected error "
                                                  f"({type(e).__name__}: {e})")


class ImageJob(QObject):
    """Reads many files on a worker thread. ``finished(images, messages)`` comes once, also
    after a cancel, with what was read until then."""

    progress = Signal(int, int)  # done, total
    finished = Signal(list, list)  # [PreparedImage], ["file: reason"]

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        # A pool of our own, so closing waits for this job only, not for other work.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: GeneratorWorker | None = None  # kept until the pool is done with it
        self._running = False
        self.images: list[PreparedImage] = []
        self.messages: list[str] = []
        self.cancelled = False

    def start(self, paths: Iterable[str | os.PathLike], shape: tuple[int, int],
              fill: float | None) -> None:
        if self.is_running():
            raise RuntimeError("this job is already running")
        self._pool.waitForDone()  # the last worker's thread may still be leaving run()
        self.images, self.messages, self.cancelled = [], [], False
        worker = GeneratorWorker(iter_prepared, list(paths), tuple(shape), fill)
        # Slots are methods of this GUI-thread object, so they run queued in the GUI thread.
        worker.yielded.connect(self._on_update)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker, self._running = worker, True
        self._pool.start(worker)

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        if self._running:
            self.cancelled = True
            self._worker.quit()  # honoured before the next file

    def cancel_and_wait(self, msecs: int = 10_000) -> bool:
        """Stop and wait for the thread (closing the app mid-job); True when it ended."""
        self.cancel()
        return self._pool.waitForDone(msecs)

    def _on_update(self, update: JobUpdate) -> None:
        if update.image is not None:
            self.images.append(update.image)
        if update.message is not None:
            self.messages.append(update.message)
        self.progress.emit(update.done, update.total)

    def _on_error(self, error: Exception) -> None:
        self.messages.append(f"reading stopped: {type(error).__name__}: {error}")

    def _on_finished(self) -> None:
        self._running = False
        if self.cancelled:
            self.messages.append(f"cancelled: {len(self.images)} image(s) read before the cancel")
        self.finished.emit(self.images, self.messages)


def encode_files(paths: Iterable[str | os.PathLike], shape: tuple[int, int],
                 fill: float | None, parent: QObject | None = None) -> ImageJob:
    """Start reading ``paths`` (files and folders) for a dataset of ``shape`` and ``fill``;
    returns the running job."""
    job = ImageJob(parent)
    job.start(paths, shape, fill)
    return job
