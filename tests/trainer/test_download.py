"""The dataset downloader against a real HTTP server on 127.0.0.1 serving generated IDX files."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from trainer.download import (
    CHUNK_BYTES,
    KNOWN_DATASETS,
    DatasetSpec,
    DownloadCancelled,
    DownloadError,
    RemoteFile,
    cache_dir,
    fetch_dataset,
)

N_IMAGES = 200  # 200 random 28x28 digits gzip to ~157 KB: several download chunks


def _idx_gz(array: np.ndarray) -> bytes:
    """An IDX file as MNIST ships it: magic (0, 0, uint8 type 0x08, ndim), big-endian dims."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _fixture_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": _idx_gz(rng.integers(0, 256, (N_IMAGES, 28, 28))),
        "train-labels-idx1-ubyte.gz": _idx_gz(rng.integers(0, 10, N_IMAGES)),
    }


FILES = _fixture_files()


class _Server:
    """What the loopback server serves, how it misbehaves, and what it was asked."""

    def __init__(self) -> None:
        self.files = dict(FILES)
        self.status: dict[str, int] = {}  # path -> HTTP error status to answer
        self.cut_once: set[str] = set()  # paths whose next full answer stops halfway
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    def url(self, prefix: str = "a") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{prefix}/"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                range_header = self.headers.get("Range")
                with state.lock:
                    state.requests.append((self.path, range_header))
                    status = state.status.get(self.path)
                    cut = self.path in state.cut_once and not range_header
                    if cut:
                        state.cut_once.discard(self.path)
                if status or name not in state.files or not self.path.startswith(("/a/", "/b/")):
                    self.send_error(status or 404)
                    return
                body = state.files[name]
                start = 0
                if range_header and state.honour_range:
                    start = int(range_header.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                # a cut answer promises the whole file but closes after half of it
                self.wfile.write(body[start:len(body) // 2] if cut else body[start:])

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        return Handler


@pytest.fixture
def server():
    state = _Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,),
                              name="loopback-http", daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # every request stays on 127.0.0.1
    return tmp_path / "cache"


def _spec(server: _Server, files: dict[str, bytes] = FILES, *mirrors: str) -> DatasetSpec:
    remote = tuple(RemoteFile(name, hashlib.sha256(data).hexdigest(), len(data))
                   for name, data in files.items())
    return DatasetSpec(name="fixture", title="Fixture digits",
                       base_urls=mirrors or (server.url(),), files=remote)


def _cache_listing() -> list[str]:
    folder = cache_dir("fixture")
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_verifies_and_second_call_downloads_nothing(server, cache):
    calls = []
    folder = fetch_dataset(_spec(server), progress=lambda d, t, m: calls.append((d, t, m)))

    assert folder == cache / "datasets" / "fixture"
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:  # a real IDX file arrived
        assert f.read(16) == struct.pack(">BBBBIII", 0, 0, 8, 3, N_IMAGES, 28, 28)
    assert _cache_listing() == sorted([*FILES, "verified.json"])
    total = sum(len(d) for d in FILES.values())
    assert calls[-1] == (total, total, "Fixture digits ready")
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)  # progress never goes back
    assert len(server.requests) == len(FILES)

    again = []
    assert fetch_dataset(_spec(server), progress=lambda d, t, m: again.append(m)) == folder
    assert len(server.requests) == len(FILES), "files already verified must not be fetched again"
    assert not [m for m in again if m.startswith("Verifying")], "verified once, then trusted"

    (folder / "verified.json").unlink()  # without the record, files are hashed, not fetched
    fetch_dataset(_spec(server), progress=lambda d, t, m: again.append(m))
    assert "Verifying train-images-idx3-ubyte.gz" in again
    assert len(server.requests) == len(FILES)


def test_wrong_file_under_final_name_is_replaced(server):
    folder = cache_dir("fixture")
    folder.mkdir(parents=True)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not the labels")

    fetch_dataset(_spec(server))

    assert (folder / "train-labels-idx1-ubyte.gz").read_bytes() == FILES[
        "train-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz.part",
                                  "verified.json"])
def test_fifo_in_the_cache_is_refused_or_ignored_never_read(server, name):
    """A named pipe under a cache name would block the hash forever: the data files are
    refused in one line, the verification record (only a cache) is ignored and replaced."""
    folder = cache_dir("fixture")
    folder.mkdir(parents=True)
    os.mkfifo(folder / name)

    if name == "verified.json":
        fetch_dataset(_spec(server))
        assert json.loads((folder / name).read_text())  # rewritten as a regular file
        return
    with pytest.raises(DownloadError, match="named pipe"):
        fetch_dataset(_spec(server))


def test_checksum_mismatch_leaves_nothing_behind(server):
    server.files["train-images-idx3-ubyte.gz"] = FILES["train-images-idx3-ubyte.gz"][::-1]

    with pytest.raises(DownloadError) as error:
        fetch_dataset(_spec(server))

    message = str(error.value)
    assert message.startswith("train-images-idx3-ubyte.gz: checksum mismatch (expected sha256 ")
    assert "the download was discarded" in message and "\n" not in message
    assert _cache_listing() == [], "no partial, wrong or .part file may stay"


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_names_status_and_url(server, status):
    server.status["/a/train-images-idx3-ubyte.gz"] = status

    with pytest.raises(DownloadError) as error:
        fetch_dataset(_spec(server))

    assert str(error.value).startswith(f"{server.url()}train-images-idx3-ubyte.gz: HTTP {status}")
    assert _cache_listing() == []


def test_connection_refused_says_so():
    port = _closed_port()
    spec = DatasetSpec("fixture", "Fixture digits", (f"http://127.0.0.1:{port}/",),
                       (RemoteFile("x.gz", "0" * 64, 10),))

    with pytest.raises(DownloadError) as error:
        fetch_dataset(spec, timeout=5)

    assert str(error.value) == (f"could not reach 127.0.0.1:{port}: connection refused; "
                                "check your internet connection")
    assert _cache_listing() == []


def _closed_port() -> int:
    with socket.socket() as s:  # a port that nothing listens on any more
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_mirrors_unreachable_is_one_line():
    ports = _closed_port(), _closed_port()
    spec = DatasetSpec("fixture", "Fixture digits",
                       tuple(f"http://127.0.0.1:{p}/" for p in ports),
                       (RemoteFile("x.gz", "0" * 64, 10),))

    with pytest.raises(DownloadError) as error:
        fetch_dataset(spec, timeout=5)

    assert str(error.value) == (
        f"could not reach 127.0.0.1:{ports[0]} (connection refused) or 127.0.0.1:{ports[1]} "
        "(connection refused); check your internet connection")


def test_silent_server_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        spec = DatasetSpec("fixture", "Fixture digits", (f"http://127.0.0.1:{port}/",),
                           (RemoteFile("x.gz", "0" * 64, 10),))
        with pytest.raises(DownloadError) as error:
            fetch_dataset(spec, timeout=0.2)

    assert str(error.value) == (f"could not reach 127.0.0.1:{port}: no answer within 0.2 s; "
                                "check your internet connection")


def test_cut_download_is_kept_and_resumed_with_range(server):
    name = "train-images-idx3-ubyte.gz"
    size = len(FILES[name])
    server.cut_once.add(f"/a/{name}")

    with pytest.raises(DownloadError) as error:
        fetch_dataset(_spec(server))

    assert str(error.value) == (f"{name}: download cut off after {size // 2:,} of {size:,} "
                                f"bytes from 127.0.0.1:{server.httpd.server_address[1]}; "
                                "try again to resume")
    folder = cache_dir("fixture")
    assert not (folder / name).exists(), "nothing partial under the final name"
    assert (folder / f"{name}.part").read_bytes() == FILES[name][:size // 2]

    fetch_dataset(_spec(server))

    assert (f"/a/{name}", f"bytes={size // 2}-") in server.requests
    assert (folder / name).read_bytes() == FILES[name]
    assert not (folder / f"{name}.part").exists()


def test_server_ignoring_range_restarts_from_zero(server):
    name = "train-images-idx3-ubyte.gz"
    folder = cache_dir("fixture")
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(FILES[name][:1000])
    server.honour_range = False

    fetch_dataset(_spec(server))

    assert (f"/a/{name}", "bytes=1000-") in server.requests
    assert (folder / name).read_bytes() == FILES[name]


def test_fallback_mirror_used_when_primary_fails(server):
    for name in FILES:
        server.status[f"/a/{name}"] = 404

    fetch_dataset(_spec(server, FILES, server.url("a"), server.url("b")))

    paths = [p for p, _ in server.requests]
    assert paths == [f"/{m}/{n}" for n in FILES for m in ("a", "b")]
    assert _cache_listing() == sorted([*FILES, "verified.json"])


def test_base_urls_override_and_all_mirrors_failing(server):
    with pytest.raises(DownloadError) as error:
        fetch_dataset(_spec(server), base_urls=[server.url("missing"), server.url("gone")])

    message = str(error.value)
    assert message.startswith(f"{server.url('missing')}train-images-idx3-ubyte.gz: HTTP 404")
    assert f"{server.url('gone')}train-images-idx3-ubyte.gz: HTTP 404" in message


def test_cancel_between_chunks_keeps_part_for_resume(server):
    name = "train-images-idx3-ubyte.gz"
    assert len(FILES[name]) > 2 * CHUNK_BYTES
    received = []

    with pytest.raises(DownloadCancelled, match="download of Fixture digits cancelled"):
        fetch_dataset(_spec(server), progress=lambda d, t, m: received.append(d),
                      cancelled=lambda: max(received, default=0) >= CHUNK_BYTES)

    folder = cache_dir("fixture")
    assert not (folder / name).exists()
    assert (folder / f"{name}.part").stat().st_size == CHUNK_BYTES

    fetch_dataset(_spec(server))
    assert (folder / name).read_bytes() == FILES[name]


def test_unknown_dataset_and_registry():
    with pytest.raises(DownloadError, match="^cifar: unknown dataset"):
        fetch_dataset("cifar")
    assert set(KNOWN_DATASETS) == {"mnist", "fashion-mnist"}
    for spec in KNOWN_DATASETS.values():
        assert len(spec.base_urls) >= 2, "a fallback mirror"
        assert {f.name for f in spec.files} >= {"train-images-idx3-ubyte.gz",
                                                 "train-labels-idx1-ubyte.gz"}
        assert all(len(f.sha256) == 64 and int(f.sha256, 16) >= 0 for f in spec.files)


def test_cache_dir_follows_env(cache):
    assert cache_dir("mnist") == cache / "datasets" / "mnist"


def test_unwritable_cache_is_a_download_error(server):
    blocker = cache_dir("fixture") / "train-images-idx3-ubyte.gz.part"
    blocker.mkdir(parents=True)  # a folder where the .part file must go: open() fails

    with pytest.raises(DownloadError) as error:
        fetch_dataset(_spec(server))

    assert str(error.value).startswith(f"{blocker}: cannot write the download (")


def test_downloaded_files_load_as_a_labelled_dataset(server):
    from trainer.data import load_idx  # the loader that load_source("mnist") will hand over to

    folder = fetch_dataset(_spec(server))
    dataset = load_idx(folder / "train-images-idx3-ubyte.gz")

    assert len(dataset) == N_IMAGES and dataset.image_shape == (28, 28)
    assert dataset.labels is not None and dataset.labels.max() <= 9


def test_load_source_mnist_downloads_once_and_joins_train_and_test(server, monkeypatch, tmp_path):
    from trainer.data import DataError, load_source

    rng = np.random.default_rng(1)
    files = dict(FILES)
    files["t10k-images-idx3-ubyte.gz"] = _idx_gz(rng.integers(0, 256, (50, 28, 28)))
    files["t10k-labels-idx1-ubyte.gz"] = _idx_gz(rng.integers(0, 10, 50))
    server.files = files
    spec = _spec(server, files)
    monkeypatch.setattr("trainer.download.KNOWN_DATASETS", {"mnist": DatasetSpec(
        name="mnist", title="MNIST", base_urls=spec.base_urls, files=spec.files)})
    seen = []
    dataset = load_source("mnist", progress=lambda done, total: seen.append(done))
    assert (len(dataset), dataset.name, dataset.source) == (N_IMAGES + 50, "MNIST", "mnist")
    assert dataset.labels is not None and len(dataset.labels) == len(dataset)
    assert seen and seen == sorted(seen)
    requests = len(server.requests)
    assert len(load_source("mnist")) == N_IMAGES + 50
    assert len(server.requests) == requests  # cached: nothing downloaded again

    server.status = {f"/a/{name}": 500 for name in files}
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match="HTTP 500"):
        load_source("mnist")
