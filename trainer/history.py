"""A bounded table of training curves.

When the table fills, every other row is dropped (the newest row is always kept), so
memory stays fixed however long a run goes while the whole run stays visible at a
coarser resolution.
"""

from __future__ import annotations

import math

import numpy as np


class History:
    def __init__(self, columns: tuple[str, ...], limit: int = 2000):
        self.columns = tuple(columns)
        self.limit = limit
        self._rows: list[tuple[float, ...]] = []

    def append(self, **values: float) -> None:
        self._rows.append(tuple(float(values[c]) for c in self.columns))
        if len(self._rows) > self.limit:
            last = self._rows[-1]
            self._rows = self._rows[:-1:2] + [last]

    def copy(self) -> History:
        """An independent copy (rows are immutable tuples, so the list is all to copy)."""
        other = History(self.columns, self.limit)
        other._rows = list(self._rows)
        return other

    def __len__(self) -> int:
        return len(self._rows)

    def arrays(self) -> dict[str, np.ndarray]:
        """Column name -> float64 array: a copy that is safe to hand to another thread."""
        table = np.array(self._rows, dtype=np.float64).reshape(len(self._rows), len(self.columns))
        return {c: table[:, i].copy() for i, c in enumerate(self.columns)}

    def to_dict(self) -> dict:
        """Strict JSON: a value that is not finite (a curve point of a diverged step) is None,
        since NaN and Infinity are not JSON and other readers (jq, browsers) refuse them."""
        return {"columns": list(self.columns), "limit": self.limit,
                "rows": [[v if math.isfinite(v) else None for v in r] for r in self._rows]}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        h = cls(tuple(d["columns"]), int(d["limit"]))
        for row in d["rows"]:
            if len(row) != len(h.columns):
                raise ValueError(f"history row has {len(row)} values for "
                                 f"{len(h.columns)} columns")
            h._rows.append(tuple(math.nan if v is None else float(v) for v in row))
        return h
