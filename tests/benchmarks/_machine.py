"""What every benchmark line says about the machine it ran on, and how it summarises rounds.

A figure means little without the CPU behind it (AVX-512 BF16 doubles a matmul; an AVX2-only
CPU emulates bf16 5-15x slower than fp32), the torch build, the precision actually used and
the other load on the machine. A benchmark run as ``python tests/benchmarks/bench_x.py`` has
this folder on sys.path, so ``from _machine import LoadWatch, machine_line, pairs_summary``.
Use:

    watch = LoadWatch()                 # at start: load average, CPU time of the others
    ... rounds: watch.mark() after each one gives the other processes' cores in that round
    line.update(machine_line(watch, precision="fp32"))

and for A/B rounds taken alternately, ``pairs_summary(a_rates, b_rates, other_loads)``: the
median of the per-pair ratios is the headline, and pairs whose other load differed wildly
from the rest are flagged (and left out of the headline when enough pairs remain).
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile",
             "amx_int8", "avx512_fp16")
# A pair is flagged when the other processes' load in its rounds differs from the median
# pair's by more than this many cores.
LOAD_SPREAD_CORES = 0.5


def cpu_description() -> dict:
    """CPU model, logical cores, and which of the ISA flags that matter it has."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if m:
            model = m.group(1).strip()
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        if m:
            flags = set(m.group(1).split())
    except OSError:  # not Linux: the flags are unknown, say so rather than guess
        flags = None
    return {"model": model, "logical_cores": os.cpu_count(),
            "isa": ({f: f in flags for f in ISA_FLAGS} if flags is not None else "unknown")}


def torch_description() -> dict:
    import torch

    try:
        bf16_native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        bf16_native = False
    return {"version": torch.__version__, "debug": torch.version.debug,
            "cuda": torch.version.cuda, "mkldnn": torch.backends.mkldnn.is_available(),
            "mkl": torch.backends.mkl.is_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_bf16_native": bf16_native, "threads": torch.get_num_threads()}


def _busy_jiffies() -> float | None:
    """Busy CPU time of the whole machine (seconds), from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadWatch:
    """The load average at start and end, and per round the cores that *other* processes
    kept busy (machine busy time minus this process's, over wall time): the load average
    is a minute-long mean and cannot tell one 2-second round from the next."""

    def __init__(self):
        self.start_load = os.getloadavg()
        self.rounds: list[float] = []
        self._reset()

    def _reset(self) -> None:
        self._t, self._busy, self._own = time.perf_counter(), _busy_jiffies(), _own_cpu()

    def mark(self) -> float:
        """Other processes' busy cores since the last mark (or start); appended to rounds.
        NaN where /proc/stat is unavailable."""
        t, busy, own = time.perf_counter(), _busy_jiffies(), _own_cpu()
        if busy is None or self._busy is None or t <= self._t:
            others = float("nan")
        else:
            others = max(0.0, ((busy - self._busy) - (own - self._own)) / (t - self._t))
        self.rounds.append(others)
        self._t, self._busy, self._own = t, busy, own
        return others

    def restart(self) -> None:
        """Start the next round's clock now (time between rounds is not counted)."""
        self._reset()


def machine_line(watch: LoadWatch | None, precision: str) -> dict:
    """The fields every benchmark line carries: ``machine`` (CPU, torch build), the
    precision actually used, and the load (average at start and end; others' cores per
    round where measured). A 1-minute load average above ~0.5 at start on top of the
    benchmark means other work shared the CPU."""
    end = os.getloadavg()
    out = {"machine": {"cpu": cpu_description(), "torch": torch_description(),
                       "python": platform.python_version(), "os": platform.platform()},
           "precision": precision}
    if watch is not None:
        out["load"] = {"loadavg_start": [round(v, 2) for v in watch.start_load],
                       "loadavg_end": [round(v, 2) for v in end],
                       "other_cores_per_round": [round(v, 2) for v in watch.rounds]}
    return out


def pairs_summary(a: list[float], b: list[float], other_loads: list[float] | None = None
                  ) -> dict:
    """Ratios a/b of alternating rounds taken back to back, summarised by their median.

    ``other_loads`` (one per pair: the others' busy cores over both rounds of it) flags
    pairs whose load differs from the median pair's by over LOAD_SPREAD_CORES; the headline
    median then uses the unflagged pairs when at least half of them are unflagged.
    """
    ratios = [x / y for x, y in zip(a, b, strict=True) if y > 0]
    flagged: list[int] = []
    if other_loads is not None and len(other_loads) == len(ratios):
        finite = [v for v in other_loads if v == v]
        if finite:
            mid = statistics.median(finite)
            flagged = [i for i, v in enumerate(other_loads)
                       if v == v and abs(v - mid) > LOAD_SPREAD_CORES]
    kept = [r for i, r in enumerate(ratios) if i not in flagged]
    use = kept if len(kept) >= max(1, len(ratios) // 2) else ratios
    return {"ratio_median_of_pairs": round(statistics.median(use), 3) if use else None,
            "pair_ratios": [round(r, 3) for r in ratios],
            "pairs_flagged_for_load": flagged,
            "pairs_in_headline": len(use),
            "a_median": round(statistics.median(a), 1) if a else None,
            "b_median": round(statistics.median(b), 1) if b else None}
