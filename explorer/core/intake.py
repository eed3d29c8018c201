"""What a drop (or a paste of copied files) means, decided here once; no Qt.

- "dataset": exactly one path, and it is a ``.npz`` / ``.npy`` file, an IDX file (a name with
  "idx" or "ubyte" in it, ``.gz`` too), or a folder with images in a subfolder (subfolders
  are labels, as ``trainer.load_folder`` reads them). The window offers to train on it.
- "images": anything else with no dataset candidate in it: image files, folders of loose
  images, and files that turn out not to be images (they get a message each when read).
- "mixed": a dataset candidate together with other paths, or several dataset candidates.

``read_drop`` walks each dropped folder once (trainer.walk_folder, off the GUI thread: it
runs as a background job) and the Drop keeps the listings: classifying, loading the folder
as a dataset and reading its images all use that one walk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trainer import FolderListing, walk_folder

DATASET_SUFFIXES = (".npz", ".npy")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a locked parent folder: reading it says so
        return False


def dataset_file_name(path: str | os.PathLike) -> bool:
    """A file name that names a dataset: .npz, .npy or IDX."""
    name = Path(path).name.lower()
    return name.endswith(DATASET_SUFFIXES) or "idx" in name or "ubyte" in name


@dataclass(frozen=True)
class Drop:
    """Dropped paths, each folder walked once, and what they mean (the module's rule)."""

    paths: tuple[str, ...]
    kind: str  # "images", "dataset" or "mixed"
    datasets: tuple[str, ...]  # the dataset candidates among ``paths``
    listings: Mapping[str, FolderListing] = field(default_factory=dict)  # path -> its walk

    def images(self) -> list[str]:
        """The paths that are not dataset candidates: read as images."""
        return [p for p in self.paths if p not in self.datasets]


def read_drop(paths: Iterable[str | os.PathLike],
              progress: Callable[[int, int], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> Drop:
    """Walk the dropped folders (once each) and classify the drop; ``progress(done, total)``
    after each path, ``cancelled()`` polled per folder (raises trainer.LoadCancelled)."""
    paths = tuple(str(p) for p in paths)
    listings: dict[str, FolderListing] = {}
    datasets: list[str] = []
    for i, p in enumerate(paths):
        if progress is not None:
            progress(i, len(paths))
        if _is_dir(Path(p)):
            listings[p] = listing = _walk(Path(p), cancelled)
            if listing.labelled():
                datasets.append(p)
        elif dataset_file_name(p):
            datasets.append(p)
    if not datasets:
        kind = "images"
    else:
        kind = "dataset" if len(paths) == 1 else "mixed"
    return Drop(paths, kind, tuple(datasets), listings)


def _walk(folder: Path, cancelled: Callable[[], bool] | None = None) -> FolderListing:
    """The folder's walk; one that cannot be listed at all names itself in ``unlisted``."""
    try:
        return walk_folder(folder, cancelled)
    except OSError as e:
        return FolderListing(root=folder, files=(), unlisted=((folder, e.strerror or str(e)),))


def expand_paths(paths: Iterable[str | os.PathLike],
                 listings: Mapping[str, FolderListing] | None = None,
                 ) -> tuple[list[Path], list[str]]:
    """Files to read as images, and messages about what was left out.

    A path given by itself is always read (a text file named .png gets its own message); a
    folder gives its image files (trainer.folders: hidden ones left out), walked now unless
    ``listings`` holds its walk already.
    """
    files: list[Path] = []
    messages: list[str] = []
    listings = listings or {}
    for raw in paths:
        p = Path(raw)
        listing = listings.get(str(raw))
        if listing is None:
            if not _is_dir(p):
                files.append(p)  # a missing or unreadable file gets its message when read
                continue
            listing = _walk(p)
        messages += [f"{q}: could not list the folder ({why})" for q, why in listing.unlisted]
        if any(q == listing.root for q, _ in listing.unlisted):
            continue
        found = [q for q, _ in listing.images()]
        others = len(listing.others())
        if not found:
            messages.append(f"{p}: no image files in this folder")
        elif others:
            messages.append(f"{p}: {others} file(s) skipped (not an image file type)")
        files.extend(found)
    return files, messages
