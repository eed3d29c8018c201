"""``--screenshot``: train each run in this thread, show them in the window, save a PNG.

``--run beta=4`` (repeatable) adds a run whose config is the base config with those changes
(explorer.core.state.parse_changes); without any, the one run of the base config. Each run
trains ``steps`` steps in turn, its held-out numbers are evaluated once more at the end, and
``report`` gives one JSON-ready record per run (its name, the changed keys, the held-out ELBO
and KL in nats, the steps done) for the command to print.
"""

from __future__ import annotations

import time

import numpy as np

from explorer.core.state import changed_keys, derive_config, describe_changes, parse_changes
from trainer import Session, TrainConfig, atomic_write


def settle(window, budget_s: float = 20.0) -> None:
    """Let throttled views draw, the Inspector and the comparison finish, then the layouts
    that their new text changes (a fixed 500 ms caught the Inspector mid-layout under load)."""
    from PySide6.QtCore import QEventLoop, QTimer

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    wait(500)
    deadline = time.monotonic() + budget_s
    while (window.inspector.busy() or window.runs.comparison.busy()) \
            and time.monotonic() < deadline:
        wait(50)
    wait(200)


def save_png_atomically(pixmap, path: str) -> None:
    """The window's picture into ``path``, whole or not at all."""

    def write(tmp: str) -> None:
        if not pixmap.save(tmp, "PNG"):
            raise OSError(f"{path}: could not encode the window as PNG")

    atomic_write(path, write)


def run_configs(base: TrainConfig, specs: list[str]) -> list[tuple[str, TrainConfig, dict]]:
    """(name, config, the keys it sets) per ``--run`` spec, named after the spec; ValueError
    (ConfigError) names a bad one."""
    if not specs:
        return [("run 1", base, {})]
    out = []
    for spec in specs:
        changes = parse_changes(spec)
        config = derive_config(base, **changes)
        # The keys the user set (even to the base's value) and any they implied.
        keys = {**{k: getattr(config, k) for k in changes}, **changed_keys(base, config)}
        keys = {k: list(v) if isinstance(v, tuple) else v for k, v in keys.items()}
        out.append((describe_changes(changes) or "base", config, keys))
    return out


def train_in_turn(dataset, runs: list[tuple[str, TrainConfig, dict]], steps: int,
                  checkpoint=None) -> list[Session]:
    """Each run's session after ``steps`` steps (the first resumes ``checkpoint``)."""
    sessions = []
    for k, (_, config, _) in enumerate(runs):
        session = (Session.from_checkpoint(checkpoint, dataset, device=config.device,
                                           threads=config.threads, strict=False)
                   if checkpoint is not None and k == 0 else Session(dataset, config))
        for _ in range(steps):
            if session.step() is None:
                break
        session.evaluate_heldout()
        sessions.append(session)
    return sessions


def report(runs: list[tuple[str, TrainConfig, dict]], sessions: list[Session]) -> list[dict]:
    records = []
    for (name, _, keys), session in zip(runs, sessions, strict=True):
        heldout = session.heldout_history.arrays()
        # The model's shape as train's JSON line gives it: arch, channels and latent_dim.
        records.append({"run": name, "config": keys, "arch": session.config.arch,
                        "channels": session.dataset.channels,
                        "latent_dim": session.config.latent_dim,
                        "heldout_elbo": round(float(heldout["elbo"][-1]), 4),
                        "heldout_kl": round(float(heldout["kl"][-1]), 4),
                        "steps": session.step_count})
    return records


def most_spread_point(mu: np.ndarray) -> int:
    """A datapoint far from the origin, to select in the picture."""
    return int(np.argmax(np.abs(mu).sum(1)))


def render(dataset, base: TrainConfig, specs: list[str], path: str, steps: int,
           checkpoint=None, size: tuple[int, int] | None = None) -> list[dict]:
    """Train every run, draw the window (at ``size``) into ``path`` and return the report."""

    from explorer.qt.window import MainWindow

    runs = run_configs(base, specs)
    sessions = train_in_turn(dataset, runs, steps, checkpoint)
    window = MainWindow(dataset, runs[0][1], start=False, launch=False, restore_state=False)
    if size is not None:
        from explorer.core.window_size import layout_for_window

        window.apply_layout(layout_for_window(*size))
    try:
        window.state.current.rename(runs[0][0])
        for name, config, _ in runs[1:]:
            window.runs.add_run(config, name)
        for run, session in zip(window.state.runs, sessions, strict=True):
            window.trainers.of(run).deliver(session.snapshot(latent_seconds=None))
        snapshot = window.state.current.snapshot
        # Fill the image panel the way a user would: click a dot, which decodes z = its mu.
        window.selection.select_point(most_spread_point(snapshot.mu))
        window.show()
        settle(window)
        window.runs.comparison.shutdown()  # the table's numbers are in (or dropped)
        save_png_atomically(window.grab(), path)
    finally:
        window.close()
    return report(runs, sessions)
