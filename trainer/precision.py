"""Which precision ``precision="auto"`` trains in: measured on this machine, never slower than fp32.

A CPU flag is not enough to know: oneDNN runs bf16 natively with AVX-512 BF16 or AMX, and
emulates it 5-15x slower than fp32 without them; and even with native bf16 the gain depends
on the matmul shape and thread count. So on a CPU with native bf16 a short race of the
model's own Linear shapes (forward and backward, fp32 against bf16 autocast, alternating,
best of several) decides, once; the answer is cached per machine (CPU model and flags),
torch version, thread count and shape in the user cache folder, as JSON written atomically.
A missing, unreadable or corrupted cache file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .atomic import atomic_write

CACHE_ENV = "LATENT_EXPLORER_CACHE"  # the same root as downloaded datasets
CACHE_NAME = "precision.json"
CACHE_VERSION = 2  # 2: raced on one thread, twice; the key has no thread count
# bf16 must beat fp32 by this factor to be chosen: a tie or a noisy win is not worth the
# rounding of bf16 matmuls.
MIN_SPEEDUP = 1.15
RACE_REPEATS = 7  # alternating fp32/bf16 timings of one training-like pass; best of each
RACE_MAX_SECONDS = 0.5  # a loaded machine stops the race early (after 2 rounds at least)


@dataclass
class PrecisionChoice:
    """The precision picked for training and why, as recorded in the train JSON line."""

    name: str  # "fp32" or "bf16"
    reason: str
    fp32_ms: float | None = None  # best measured pass, when raced
    bf16_ms: float | None = None
    cached: bool = False

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain fp32."""
        return torch.bfloat16 if self.name == "bf16" else None

    def to_dict(self) -> dict:
        return asdict(self)


# Answers already known in this process, by (cache file, key): a session reset or a second
# session never races again, even where the cache folder is read-only.
_known: dict[tuple[str, str], PrecisionChoice] = {}


def forget() -> None:
    """Drop the answers known in this process (the cache file stays)."""
    _known.clear()


def cache_path() -> Path:
    import platformdirs

    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("latent-explorer")
    return Path(root) / CACHE_NAME


def machine_key(shape: tuple[int, ...]) -> str:
    """What the answer depends on: CPU model and flags, torch version, shape."""
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags_hash = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:16]
    return "|".join((model or platform.machine(), flags_hash, torch.__version__,
                     "shape=" + "x".join(map(str, shape))))


def onednn_bf16_native() -> bool:
    try:  # True on CPUs with AVX-512 BF16 or AMX, where oneDNN runs bf16 natively
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def race(shape: tuple[int, ...], repeats: int = RACE_REPEATS) -> tuple[float, float]:
    """Best milliseconds of one forward + backward through Linear layers of ``shape``
    (batch, in, hidden..., out) in fp32 and under bf16 autocast, timed alternately so that
    other load hits both alike, on one thread: whether bf16 runs natively is a property of
    the core, and a second thread sharing a busy machine makes timings erratic (measured a
    0.73x "loss" for bf16 at 2 threads under load where one thread showed 1.8x). About
    0.05-0.2 s for a 784-512-512 layer stack."""
    batch, *sizes = shape
    gen = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    x = torch.rand(batch, sizes[0], generator=gen)

    def one_pass(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = x
            for layer in layers:
                h = torch.relu(layer(h))
            loss = h.float().sum()
        loss.backward()
        return (time.perf_counter() - t0) * 1e3

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_pass(False), one_pass(True)  # warm-up: oneDNN builds its primitives on first use
        best = {False: float("inf"), True: float("inf")}
        start = time.perf_counter()
        for i in range(repeats):
            if i >= 2 and time.perf_counter() - start > RACE_MAX_SECONDS:
                break
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], one_pass(bf16))
    finally:
        torch.set_num_threads(threads)
    return best[False], best[True]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION \
            or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _valid_entry(entry) -> bool:
    return (isinstance(entry, dict) and entry.get("name") in ("fp32", "bf16")
            and isinstance(entry.get("reason"), str))


def _write_cache(path: Path, entries: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    except OSError:  # a read-only cache folder costs one race per start, nothing more
        pass


def choose_precision(shape: tuple[int, ...], device: torch.device | str = "cpu",
                     use_cache: bool = True) -> PrecisionChoice:
    """The precision ``auto`` means for a model whose Linear layers have ``shape`` (batch,
    in, hidden..., out) on ``device``: bf16 only where it was measured faster than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "CUDA device with native bf16")
        return PrecisionChoice("fp32", "CUDA device without native bf16")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"{device.type}: fp32 (bf16 not raced there)")
    if not onednn_bf16_native():
        return PrecisionChoice("fp32", "this CPU has no native bf16 (no AVX-512 BF16 or "
                                       "AMX): bf16 would be emulated, slower than fp32")
    key = machine_key(shape)
    path = cache_path()
    if use_cache and (str(path), key) in _known:
        return _known[str(path), key]
    entries = _read_cache(path) if use_cache else {}
    entry = entries.get(key)
    if _valid_entry(entry):
        choice = PrecisionChoice(entry["name"], entry["reason"], entry.get("fp32_ms"),
                                 entry.get("bf16_ms"), cached=True)
        _known[str(path), key] = choice
        return choice
    # Two races: the answer is kept only when both agree (a busy machine can skew one).
    first, second = race(shape), race(shape)
    fp32_ms, bf16_ms = min(first[0], second[0]), min(first[1], second[1])
    speedup = fp32_ms / bf16_ms
    if (first[0] / first[1] >= MIN_SPEEDUP) != (second[0] / second[1] >= MIN_SPEEDUP):
        # Not cached: the next start races again, perhaps on a quieter machine.
        return PrecisionChoice("fp32", f"race inconclusive (bf16 {first[0] / first[1]:.2f}x "
                                       f"then {second[0] / second[1]:.2f}x fp32: a busy "
                                       "machine?); fp32 for now",
                               round(fp32_ms, 3), round(bf16_ms, 3))
    if speedup >= MIN_SPEEDUP:
        choice = PrecisionChoice("bf16", f"measured: bf16 matmuls {speedup:.2f}x fp32 here",
                                 round(fp32_ms, 3), round(bf16_ms, 3))
    else:
        choice = PrecisionChoice("fp32", f"measured: bf16 only {speedup:.2f}x fp32 here "
                                         f"(needs {MIN_SPEEDUP}x)",
                                 round(fp32_ms, 3), round(bf16_ms, 3))
    if use_cache:
        entries[key] = {k: v for k, v in choice.to_dict().items() if k != "cached"}
        entries[key]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _write_cache(path, entries)
        _known[str(path), key] = PrecisionChoice(**{**choice.to_dict(), "cached": True})
    return choice


def model_shape(batch_size: int, n_pixels: int, hidden: tuple[int, ...]) -> tuple[int, ...]:
    """The race shape for a VAE: its encoder's big layers (the decoder mirrors them)."""
    return (int(batch_size), int(n_pixels), *(int(h) for h in hidden))
