"""``--screenshot``: train each run in this thread, show them in the window, save a PNG.

``--run beta=4`` (repeatable) adds a run whose config is the base config with those changes
(explorer.core.state.parse_changes); without any, the one run of the base config. Each run
trains ``steps`` steps in turn, its held-out numbers are evaluated once more at the end, and
``report`` gives one JSON-ready record per run (its name, the changed keys, the held-out ELBO
and KL in nats, the steps done) for the command to print.
"""

from __future__ import annotations

import numpy as np

from explorer.core.state import changed_keys, derive_config, describe_changes, parse_changes
from trainer import Session, TrainConfig


def run_configs(base: TrainConfig, specs: list[str]) -> list[tuple[str, TrainConfig]]:
    """(name, config) per ``--run`` spec; ValueError (ConfigError) names a bad one."""
    if not specs:
        return [("run 1", base)]
    out = []
    for spec in specs:
        config = derive_config(base, **parse_changes(spec))
        out.append((describe_changes(changed_keys(base, config)) or "base", config))
    return out


def train_in_turn(dataset, runs: list[tuple[str, TrainConfig]], steps: int,
                  checkpoint=None) -> list[Session]:
    """Each run's session after ``steps`` steps (the first resumes ``checkpoint``)."""
    sessions = []
    for k, (_, config) in enumerate(runs):
        session = (Session.from_checkpoint(checkpoint, dataset, device=config.device,
                                           threads=config.threads, strict=False)
                   if checkpoint is not None and k == 0 else Session(dataset, config))
        for _ in range(steps):
            if session.step() is None:
                break
        session.evaluate_heldout()
        sessions.append(session)
    return sessions


def report(base: TrainConfig, runs: list[tuple[str, TrainConfig]],
           sessions: list[Session]) -> list[dict]:
    records = []
    for (name, config), session in zip(runs, sessions, strict=True):
        heldout = session.heldout_history.arrays()
        records.append({"run": name, "config": changed_keys(base, config),
                        "heldout_elbo": round(float(heldout["elbo"][-1]), 4),
                        "heldout_kl": round(float(heldout["kl"][-1]), 4),
                        "steps": session.step_count})
    return records


def most_spread_point(mu: np.ndarray) -> int:
    """A datapoint far from the origin, to select in the picture."""
    return int(np.argmax(np.abs(mu).sum(1)))
