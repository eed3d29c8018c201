"""One walk of a folder of images, for folder datasets, dropped folders and encoded folders.

The rules, stated once:

- Hidden: a name starting with "." at any level below the root (``.git``, ``.DS_Store``,
  ``._photo.png``). Hidden files are left out and hidden folders are not entered. The root
  itself is the user's choice and is walked whatever its name.
- Labels: a file directly in the root has none; a file anywhere below a subfolder has that
  subfolder's name (as ``trainer.load_folder`` reads labelled datasets).
- Order: natural (``img2`` before ``img10``): the root's entries by name, each subfolder's
  files by their path below it.
- Links are followed, each folder is walked once (a link loop ends); named pipes, devices and
  sockets are listed (a reader refuses them with a reason) but never opened here.
- A folder below the root that cannot be listed is named in ``unlisted``, never silently
  lost; the root itself must be listable (an OSError otherwise).

A walk only lists: it stats entries but reads no file, so it is cheap next to decoding, and
a caller that needs the listing twice (classify a drop, then load it) keeps the listing.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .data import LoadCancelled

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def is_hidden(name: str) -> bool:
    """The hidden-file rule for one name below the walked root."""
    return name.startswith(".")


def natural_key(text: str) -> list:
    """Sort key that puts ``img2`` before ``img10`` (case-insensitive)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def is_image_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class FolderListing:
    """What one walk of ``root`` found (see the module's rules)."""

    root: Path
    files: tuple[tuple[Path, str | None], ...]  # (file, label or None), every visible file
    unlisted: tuple[tuple[Path, str], ...] = ()  # (folder, why) for folders not listed

    def images(self) -> list[tuple[Path, str | None]]:
        """(file, label) of the files with an image suffix, in order."""
        return [(p, label) for p, label in self.files if is_image_name(p)]

    def others(self) -> list[Path]:
        """The visible files without an image suffix."""
        return [p for p, _ in self.files if not is_image_name(p)]

    def labelled(self) -> bool:
        """Whether some image lies in a subfolder: a labelled dataset."""
        return any(label is not None for _, label in self.images())


def walk_folder(root: str | os.PathLike,
                cancelled: Callable[[], bool] | None = None) -> FolderListing:
    """List ``root`` once; ``cancelled()`` is polled per folder (raises LoadCancelled)."""
    root = Path(root)
    seen: set[tuple[int, int]] = set()
    unlisted: list[tuple[Path, str]] = []

    def entries(folder: Path) -> list[os.DirEntry] | None:
        """The folder's visible entries, or None when it was seen or cannot be listed."""
        if cancelled is not None and cancelled():
            raise LoadCancelled(f"{root}: listing cancelled")
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                return None
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                return [e for e in it if not is_hidden(e.name)]
        except OSError as e:
            if folder == root:
                raise
            unlisted.append((folder, e.strerror or str(e)))
            return None

    def kind(entry: os.DirEntry) -> str | None:
        """"dir", "file" (regular or special) or None (a broken link)."""
        try:
            if entry.is_dir():
                return "dir"
            if entry.is_file() or not stat.S_ISDIR(entry.stat().st_mode):
                return "file"
        except OSError:
            pass
        return None

    def below(folder: Path, prefix: str, out: list[tuple[str, Path]]) -> None:
        for e in entries(folder) or ():
            k = kind(e)
            if k == "dir":
                below(Path(e.path), f"{prefix}{e.name}{os.sep}", out)
            elif k == "file":
                out.append((prefix + e.name, Path(e.path)))

    files: list[tuple[Path, str | None]] = []
    for e in sorted(entries(root) or (), key=lambda e: natural_key(e.name)):
        k = kind(e)
        if k == "file":
            files.append((Path(e.path), None))
        elif k == "dir":
            found: list[tuple[str, Path]] = []
            below(Path(e.path), "", found)
            found.sort(key=lambda rp: natural_key(rp[0]))
            files.extend((p, e.name) for _, p in found)
    return FolderListing(root=root, files=tuple(files), unlisted=tuple(unlisted))
