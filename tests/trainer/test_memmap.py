"""Datasets larger than memory: a uint8 .npy is memory-mapped, never read whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from trainer import Session, TrainConfig, load_source

ROOT = Path(__file__).resolve().parents[2]


def sparse_npy(path: Path, n: int, side: int = 28) -> np.ndarray:
    """A uint8 (n, side, side) .npy whose first 2,000 images hold squares and the rest are
    zeros that take no disk space (a sparse file)."""
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, side, side))
    rng = np.random.default_rng(0)
    for i in range(2000):
        top, left = rng.integers(0, side - 8, 2)
        images[i, top:top + 8, left:left + 8] = 255
    images.flush()
    return images


# The child may hold at most DATA_LIMIT of heap and private memory (RLIMIT_DATA; a shared
# read-only file map does not count), less than half the file: reading it into memory fails.
CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    from trainer.cli import main
    status = main(["train", sys.argv[1], "--out", sys.argv[2], "--seconds", "2",
                   "--hidden", "64", "--quiet"])
    try:
        np.load(sys.argv[1])
        whole = "read"
    except MemoryError:
        whole = "refused"
    print(json.dumps({"status": status, "whole_file": whole,
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def test_a_memory_mapped_npy_larger_than_the_memory_budget_trains(tmp_path):
    data = tmp_path / "big.npy"
    n = 2_600_000  # 2.04 GB of 28 x 28 uint8 images
    sparse_npy(data, n)
    # torch's own writable segments, the per-point latents and the 20,000-point final
    # held-out evaluation take ~700 MB: 960 MB leaves headroom and is still under half the file.
    limit = 960 << 20
    assert data.stat().st_size > 2 * limit
    run = subprocess.run([sys.executable, "-c", CHILD, str(data), str(tmp_path / "ckpt"),
                          str(limit)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    report, child = [json.loads(ln) for ln in run.stdout.splitlines() if ln.startswith("{")]
    assert child == {**child, "status": 0, "whole_file": "refused"}
    assert report["steps"] > 0 and report["n_train"] + report["n_heldout"] == n
    assert np.isfinite(report["heldout_elbo"])


def test_npy_is_memory_mapped_and_minibatches_match_the_in_memory_engine(tmp_path):
    data = tmp_path / "small.npy"
    sparse_npy(data, 3000, side=12)
    dataset = load_source(data)
    assert dataset.memory_mapped and isinstance(dataset.pixels, np.memmap)
    assert dataset.scale == 1 / 255
    config = TrainConfig(hidden=(32,), batch_size=64, precision="fp32", threads=1,
                         logpx_points=0)
    on_disk = Session(dataset, config, pixels_in_memory=False)
    in_memory = Session(load_source(data), config, pixels_in_memory=True)
    assert on_disk._pixels is None and in_memory._pixels is not None
    for _ in range(5):
        assert on_disk.step() == in_memory.step()
    for a, b in zip(on_disk.model.parameters(), in_memory.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert on_disk.evaluate() == in_memory.evaluate()
    # The in-memory copy leaves the file's fingerprint unchanged.
    in_ram = np.array(dataset.pixels)
    assert not isinstance(in_ram, np.memmap)
    assert load_source(data).fingerprint() == dataset.fingerprint()
