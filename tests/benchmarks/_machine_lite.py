"""A stand-in for tests/benchmarks/_machine.py (the shared machine description another
branch adds) with the same two names, used only while that module is absent: the CPU model,
cores and ISA flags from /proc/cpuinfo, the torch version, the precision, and the load
average at start and end. Delete this file once _machine.py is on main."""

from __future__ import annotations

import os
import platform
import re

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


class LoadWatch:
    def __init__(self):
        self.start_load = os.getloadavg()

    def restart(self) -> None:
        pass

    def mark(self) -> float:
        return float("nan")


def machine_line(watch: LoadWatch | None, precision: str) -> dict:
    import torch

    model, flags = platform.processor() or platform.machine(), None
    try:
        text = open("/proc/cpuinfo").read()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        flags = set(m.group(1).split()) if m else None
    except OSError:
        pass
    out = {"machine": {"cpu": {"model": model, "logical_cores": os.cpu_count(),
                               "isa": ({f: f in flags for f in ISA_FLAGS} if flags is not None
                                       else "unknown")},
                       "torch": {"version": torch.__version__}},
           "precision": precision}
    if watch is not None:
        out["load"] = {"loadavg_start": [round(v, 2) for v in watch.start_load],
                       "loadavg_end": [round(v, 2) for v in os.getloadavg()]}
    return out
