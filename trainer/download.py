"""Download MNIST and Fashion-MNIST once into the user's cache, verified by SHA-256.

Each file goes to ``<name>.part`` in the cache folder, is checked against its SHA-256 and only
then renamed to its final name, so a file under its final name is always complete and right.
An interrupted download keeps its ``.part`` and resumes with an HTTP Range request.
Standard library only (urllib), so no new dependency.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

import platformdirs

from .files import require_regular_file

CACHE_ENV = "LATENT_EXPLORER_CACHE"
CHUNK_BYTES = 64 * 1024
_VERIFIED_JSON = "verified.json"
_USER_AGENT = "latent-explorer/0.1 (+python urllib)"

ProgressCallback = Callable[[int, int, str], None]  # (done_bytes, total_bytes, message)


class DownloadError(Exception):
    """A download failed. The message is one line, fit to show to the user."""


class DownloadCancelled(DownloadError):
    """The user cancelled; any ``.part`` file is kept so the next try resumes."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    sha256: str
    size: int | None = None  # bytes, when known: sizes the progress bar and caps the download


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # cache folder name, e.g. "mnist"
    title: str  # for messages, e.g. "MNIST"
    base_urls: tuple[str, ...]  # primary mirror first, then fallbacks; each ends with "/"
    files: tuple[RemoteFile, ...]


def _idx_files(hashes: tuple[tuple[str, int, str], ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, sha, size) for name, size, sha in hashes)


# SHA-256 and sizes from tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt and
# fashion_mnist.txt (the same values appear in several independent projects). The mirrors are
# those of tensorflow-datasets and torchvision (torchvision lists md5 only).
KNOWN_DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({
    "mnist": DatasetSpec(
        name="mnist", title="MNIST",
        base_urls=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                   "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        files=_idx_files((
            ("train-images-idx3-ubyte.gz", 9912422,
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            ("train-labels-idx1-ubyte.gz", 28881,
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            ("t10k-images-idx3-ubyte.gz", 1648877,
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            ("t10k-labels-idx1-ubyte.gz", 4542,
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        )),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist", title="Fashion-MNIST",
        base_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                   "data/fashion/"),
        files=_idx_files((
            ("train-images-idx3-ubyte.gz", 26421880,
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            ("train-labels-idx1-ubyte.gz", 29515,
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            ("t10k-images-idx3-ubyte.gz", 4422102,
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            ("t10k-labels-idx1-ubyte.gz", 5148,
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        )),
    ),
})


def cache_dir(name: str) -> Path:
    """Where dataset ``name`` lives: ``<user cache>/datasets/<name>``; the root can be moved
    with the LATENT_EXPLORER_CACHE environment variable."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("latent-explorer")
    return Path(root) / "datasets" / name


def fetch_dataset(dataset: str | DatasetSpec, progress: ProgressCallback | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  base_urls: tuple[str, ...] | list[str] | None = None,
                  timeout: float = 30.0) -> Path:
    """Make sure every file of ``dataset`` (a KNOWN_DATASETS name or a DatasetSpec) is in its
    cache folder with the right SHA-256, downloading what is missing; return the folder.

    ``base_urls`` replaces the spec's mirrors (tried in order). ``cancelled()`` is polled
    between chunks. Raises DownloadError (or DownloadCancelled) with a one-line message.
    """
    spec = _resolve(dataset)
    mirrors = tuple(base_urls) if base_urls is not None else spec.base_urls
    if not mirrors:
        raise DownloadError(f"{spec.title}: no download address given")
    folder = cache_dir(spec.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{folder}: cannot create the cache folder ({e.strerror})") from e
    job = _Job(spec, folder, progress, cancelled, timeout)
    try:
        for remote in spec.files:
            if not job.already_valid(remote):
                job.download(remote, mirrors)
    except OSError as e:  # the cache itself failed (disk full, permissions): network errors
        where = e.filename or folder  # were already turned into DownloadError above
        raise DownloadError(f"{where}: cannot write the download ({e.strerror or e})") from e
    job.report(f"{spec.title} ready")
    return folder


def _resolve(dataset: str | DatasetSpec) -> DatasetSpec:
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return KNOWN_DATASETS[dataset]
    except KeyError:
        known = ", ".join(KNOWN_DATASETS)
        raise DownloadError(f"{dataset}: unknown dataset (known: {known})") from None


class _MirrorFailed(Exception):
    """One mirror failed for one file; the next mirror may still succeed."""

    def __init__(self, message: str, unreachable: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable  # (host, why) when the host could not be reached


def _combined(failures: list[_MirrorFailed]) -> str:
    """One line for all mirrors: the primary's failure first, then the fallbacks'."""
    if all(f.unreachable for f in failures):
        hosts = " or ".join(f"{host} ({why})" for host, why in (f.unreachable for f in failures))
        return str(failures[0]) if len(failures) == 1 else \
            f"could not reach {hosts}; check your internet connection"
    message = str(failures[0])
    if len(failures) > 1:
        message += "; fallback mirrors failed too (" + " | ".join(map(str, failures[1:])) + ")"
    return message


class _Job:
    """One fetch_dataset call: its folder, callbacks and running byte count."""

    def __init__(self, spec: DatasetSpec, folder: Path, progress: ProgressCallback | None,
                 cancelled: Callable[[], bool] | None, timeout: float) -> None:
        self.spec, self.folder, self.timeout = spec, folder, timeout
        self._progress, self._cancelled = progress, cancelled
        sizes = [f.size for f in spec.files]
        self.total = sum(sizes) if all(s is not None for s in sizes) else 0  # 0: unknown
        self.done = 0
        self.verified = _read_verified(folder / _VERIFIED_JSON)

    def report(self, message: str) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total, message)

    def check_cancelled(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise DownloadCancelled(f"download of {self.spec.title} cancelled")

    # -- files already present ------------------------------------------------------------

    def already_valid(self, remote: RemoteFile) -> bool:
        path = self.folder / remote.name
        # A FIFO or device under a cache name would block the hash (or the loader) forever.
        for own in (path, path.with_name(path.name + ".part")):
            require_regular_file(own, DownloadError)
        st = path.stat() if path.exists() else None
        if st is None:
            return False
        stamp = {"sha256": remote.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if self.verified.get(remote.name) != stamp:  # hash once, then trust size + mtime
            self.report(f"Verifying {remote.name}")
            if _sha256(path) != remote.sha256:
                path.unlink()  # a wrong file under the final name would be loaded as data
                return False
            self._remember(remote.name, stamp)
        self.done += st.st_size
        self.report(f"{remote.name} already downloaded")
        return True

    def _remember(self, name: str, stamp: dict) -> None:
        self.verified[name] = stamp
        _write_json_atomic(self.folder / _VERIFIED_JSON, self.verified)

    # -- downloading ----------------------------------------------------------------------

    def download(self, remote: RemoteFile, mirrors: tuple[str, ...]) -> None:
        failures: list[_MirrorFailed] = []
        start = self.done
        for base in mirrors:
            self.done = start
            try:
                self._from_mirror(remote, base.rstrip("/") + "/" + remote.name)
                return
            except _MirrorFailed as e:
                failures.append(e)
        raise DownloadError(_combined(failures))

    def _from_mirror(self, remote: RemoteFile, url: str) -> None:
        part = self.folder / (remote.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        if remote.size is not None and offset > remote.size:
            part.unlink()
            offset = 0
        if remote.size is None or offset < remote.size:
            offset = self._receive(remote, url, part, offset)
        got = _sha256(part)
        if got != remote.sha256:
            part.unlink()  # complete but wrong: resuming it could never succeed
            raise _MirrorFailed(
                f"{remote.name}: checksum mismatch (expected sha256 {remote.sha256[:16]}..., "
                f"got {got[:16]}...); the download was discarded")
        final = self.folder / remote.name
        os.replace(part, final)
        _fsync_dir(self.folder)
        st = final.stat()
        self._remember(remote.name, {"sha256": remote.sha256, "size": st.st_size,
                                     "mtime_ns": st.st_mtime_ns})

    def _receive(self, remote: RemoteFile, url: str, part: Path, offset: int) -> int:
        """Append the rest of ``url`` to ``part`` (or restart it); return its final size."""
        host = urlsplit(url).netloc or url
        self.check_cancelled()
        self.report(f"Downloading {remote.name} from {host}")
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:  # our .part is no prefix of theirs: start over
                part.unlink()
                return self._receive(remote, url, part, 0)
            raise _MirrorFailed(f"{url}: HTTP {e.code} {e.reason}") from e
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            why = _unreachable_reason(e, self.timeout)
            raise _MirrorFailed(f"could not reach {host}: {why}; check your internet connection",
                                unreachable=(host, why)) from e
        with response:
            resumed = bool(offset) and response.status == 206 and _range_starts_at(
                response.headers.get("Content-Range", ""), offset)
            if not resumed:
                offset = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length and length.isdigit() else remote.size
            self.done += offset
            received = offset
            with open(part, "ab" if resumed else "wb") as f:
                try:
                    while remote.size is None or received <= remote.size:
                        self.check_cancelled()
                        chunk = _read_chunk(response)
                        if not chunk:
                            break  # end of data, or the connection dropped: checked below
                        f.write(chunk)
                        received += len(chunk)
                        self.done += len(chunk)
                        self.report(f"Downloading {remote.name} from {host}")
                finally:  # what arrived is kept, complete, for the next try to resume
                    f.flush()
                    os.fsync(f.fileno())
        if expected is not None and received < expected:
            raise _MirrorFailed(
                f"{remote.name}: download cut off after {received:,} of {expected:,} bytes "
                f"from {host}; try again to resume")
        return received


def _read_chunk(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read(CHUNK_BYTES)
    except (http.client.IncompleteRead, http.client.HTTPException, OSError):
        return b""  # a dropped connection reads as a short download


def _range_starts_at(content_range: str, offset: int) -> bool:
    # "bytes 1000-1999/2000": the server resumed exactly where our .part ends
    return content_range.strip().startswith(f"bytes {offset}-")


def _unreachable_reason(error: BaseException, timeout: float) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(reason, ConnectionRefusedError) or getattr(reason, "errno", None) == \
            errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    return getattr(reason, "strerror", None) or str(reason)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_verified(path: Path) -> dict:
    try:
        if require_regular_file(path, OSError) is None:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: files are simply hashed again
    return data if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not possible (nor needed) on Windows
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
