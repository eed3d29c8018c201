"""GUI benchmark: the window live while training on 70,000 MNIST-sized points.

Prints one JSON line: event-loop lag (p50/p99/max, ms), latent refresh (snapshot received
by the GUI to the end of the latent plane's next paint, ms), click-to-decoded-image latency
(ms), training samples/s with the GUI live as a ratio to the headless engine, measured in
alternating rounds in this same run (same threads and precision; median of the pairs),
startup to the first painted window after imports (s), and the load average at start and
end (other jobs on this shared machine skew everything).

    python tests/benchmarks/bench_gui.py [--seconds 12] [--rounds 4] [--n 70000]
"""

from __future__ import annotations

import time

IMPORTS_START = time.perf_counter()  # the import time of Qt, torch and the app is reported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The window autosaves on close: keep the benchmark's run out of the user's data folder.
os.environ.setdefault("LATENT_EXPLORER_DATA", tempfile.mkdtemp(prefix="bench-gui-"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
from _machine import LoadWatch, machine_line, pairs_summary  # noqa: E402
from PySide6.QtCore import (  # noqa: E402
    QElapsedTimer,
    QEvent,
    QEventLoop,
    QObject,
    QPoint,
    QPointF,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from explorer.qt.window import MainWindow  # noqa: E402
from trainer import ImageDataset, Session, TrainConfig  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORTS_START


def random_mnist(n: int, seed: int = 0) -> ImageDataset:
    """MNIST-shaped uint8 images with some structure (blurred blobs per class)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    protos = rng.random((10, 28, 28)) ** 3
    noise = rng.random((n, 28, 28), dtype=np.float32)
    pixels = (np.clip(0.7 * protos[labels] + 0.3 * noise, 0, 1) * 255).astype(np.uint8)
    return ImageDataset(pixels=pixels, scale=1 / 255, name="random MNIST-sized", source="bench",
                        labels=labels, label_names=[str(i) for i in range(10)])


def headless_rate(session: Session, seconds: float) -> float:
    """Samples/s of a bare Session.step() loop in this (the GUI's) thread."""
    s0, t0 = session.samples_seen, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.step()
    return (session.samples_seen - s0) / (time.perf_counter() - t0)


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


class LagProbe(QObject):
    """A 1 ms precise timer that records how late each of its ticks arrives."""

    def __init__(self):
        super().__init__()
        self.lags: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(1)
        self._timer.timeout.connect(self.tick)

    def start(self) -> None:
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> None:
        now = self._clock.nsecsElapsed()
        self.lags.append(max(0.0, (now - self._last) / 1e6 - 1.0))
        self._last = now


class PaintClock(QObject):
    """Times paints of the latent plane's viewport (by running them inside an event filter)
    and each snapshot's latent refresh: from the GUI receiving it to the end of the first
    paint after the window applied it.

    The receipt time is stamped both by our own receiver of the worker's signal and by the
    wrapped ``apply_snapshot``, and the earlier one counts: Qt does not promise that our
    receiver runs before the window's own (it did not, so the old figure was one snapshot
    interval too long)."""

    def __init__(self, window: MainWindow):
        super().__init__()
        self.window = window
        self.first_paint: float | None = None
        self.refresh_ms: list[float] = []
        self.paint_ms: list[float] = []
        self._received: dict[int, float] = {}  # snapshot version -> receipt time
        self._applied: int | None = None  # version applied but not painted yet
        self._inside = False
        self.recording = True  # refreshes count only while this is on
        window.trainers.current.worker.snapshotted.connect(self.on_snapshot)
        original = window.current_run.apply_snapshot

        def apply_and_mark(snapshot):
            self._received.setdefault(snapshot.version, time.perf_counter())
            self._applied = snapshot.version  # a paint from inside the apply counts
            original(snapshot)

        window.current_run.apply_snapshot = apply_and_mark
        window.latent_view.viewport().installEventFilter(self)

    @Slot(object)
    def on_snapshot(self, snapshot) -> None:
        self._received.setdefault(snapshot.version, time.perf_counter())

    def eventFilter(self, obj, event) -> bool:
        if event.type() != QEvent.Type.Paint or self._inside:
            return False
        self._inside = True
        t0 = time.perf_counter()
        self.window.latent_view.viewportEvent(event)  # the paint itself, timed
        t1 = time.perf_counter()
        self._inside = False
        if self.first_paint is None:
            self.first_paint = t1
        self.paint_ms.append((t1 - t0) * 1e3)
        if self._applied is not None:
            if self.recording:
                self.refresh_ms.append((t1 - self._received[self._applied]) * 1e3)
            self._applied = None
            self._received.clear()  # snapshots the window skipped for a newer one
        return True


def empty_spots(window: MainWindow, count: int) -> list[QPoint]:
    view = window.latent_view
    vb = view.getPlotItem().vb
    (x0, x1), (y0, y1) = vb.viewRange()
    mu = window.state.current.snapshot.mu[::50]
    spots = []
    for fx in np.linspace(0.05, 0.95, 25):
        for fy in np.linspace(0.05, 0.95, 25):
            z = (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))
            p = view.mapFromScene(vb.mapViewToScene(QPointF(*z)))
            pw, ph = vb.viewPixelSize()
            d = np.min(np.hypot((mu[:, 0] - z[0]) / pw, (mu[:, 1] - z[1]) / ph))
            spots.append((d, p))
    spots.sort(key=lambda t: -t[0])
    return [p for _, p in spots[:count]]


def run_for(seconds: float) -> None:
    """Run the real event loop (not a processEvents spin, which would eat a core)."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(condition, timeout: float = 120.0) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("benchmark: condition not met in time")
        run_for(0.005)


def wait_until_quiet(worker, quiet: float = 0.3, timeout: float = 30.0) -> None:
    """After a pause the worker finishes re-encoding the latents (sending snapshots); wait
    until no snapshot has come for ``quiet`` seconds, so the headless round runs alone."""
    last = [time.perf_counter()]

    def mark(_snapshot) -> None:
        last[0] = time.perf_counter()

    worker.snapshotted.connect(mark)
    try:
        wait_until(lambda: time.perf_counter() - last[0] >= quiet, timeout)
    finally:
        worker.snapshotted.disconnect(mark)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=70_000)
    ap.add_argument("--seconds", type=float, default=12.0,
                    help="GUI-live training time in all, split over the rounds")
    ap.add_argument("--rounds", type=int, default=4,
                    help="alternating GUI-live / headless rounds of the same length")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for training (the GUI's setting is 1)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="training precision (fp32: as on a CPU without native bf16)")
    args = ap.parse_args()
    watch = LoadWatch()
    config = TrainConfig(threads=args.threads, precision=args.precision)
    dataset = random_mnist(args.n)

    t_start = time.perf_counter()
    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive)
    window = MainWindow(dataset, config, restore_state=False)
    clock = PaintClock(window)
    window.show()
    wait_until(lambda: clock.first_paint is not None)
    startup = clock.first_paint - t_start

    # Let the first snapshot (every point encoded once) arrive and training settle.
    wait_until(lambda: window.state.current.snapshot is not None
               and window.trainers.current.worker.session is not None)
    run_for(2.0)
    session = window.trainers.current.worker.session
    headless = Session(dataset, config)  # same data, config, precision and torch threads
    for _ in range(5):  # warm-up
        headless.step()

    # Alternate GUI-live and headless rounds, so both see the same machine load (other
    # jobs on this shared machine come and go); the ratio is the median of the pairs.
    round_s = args.seconds / args.rounds
    probe = LagProbe()
    clock.recording = False
    live_rates, headless_rates, pair_loads = [], [], []
    for r in range(args.rounds):
        if r:
            window.current_run.toggle_running()  # resume, as the Space key does
            run_for(0.5)
        s0, t0 = session.samples_seen, time.perf_counter()
        watch.restart()
        probe.start()
        clock.recording = True
        run_for(round_s)
        clock.recording = False
        probe.stop()
        live_rates.append((session.samples_seen - s0) / (time.perf_counter() - t0))
        window.current_run.toggle_running()  # pause; the GUI thread then trains a bare Session
        wait_until_quiet(window.trainers.current.worker)
        headless_rates.append(headless_rate(headless, round_s))
        pair_loads.append(watch.mark())
    window.current_run.toggle_running()
    run_for(0.5)
    pairs = pairs_summary(live_rates, headless_rates, pair_loads)

    # Click-to-decoded-image: press on empty plane, the image tile repainted, while training.
    clicks = []
    tile = window.image_panel.decoded
    for p in empty_spots(window, 40):
        t = time.perf_counter()
        QTest.mouseClick(window.latent_view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.NoModifier, p)
        tile.repaint()
        clicks.append((time.perf_counter() - t) * 1e3)
    window.close()

    print(json.dumps({
        "n_points": args.n,
        "lag_ms_p50": round(percentile(probe.lags, 50), 2),
        "lag_ms_p99": round(percentile(probe.lags, 99), 2),
        "lag_ms_max": round(max(probe.lags), 2),
        "lag_ticks": len(probe.lags),
        "latent_refresh_ms_p50": round(percentile(clock.refresh_ms, 50), 2),
        "latent_refresh_ms_p90": round(percentile(clock.refresh_ms, 90), 2),
        "latent_refresh_ms_max": round(max(clock.refresh_ms, default=float("nan")), 2),
        "latent_refreshes": len(clock.refresh_ms),
        "latent_paint_ms_p50": round(percentile(clock.paint_ms, 50), 2),
        "latent_paints": len(clock.paint_ms),
        "click_to_image_ms_p50": round(percentile(clicks, 50), 2),
        "click_to_image_ms_max": round(max(clicks), 2),
        "samples_per_s_gui": [round(v) for v in live_rates],
        "samples_per_s_headless": [round(v) for v in headless_rates],
        # the median of the pairs, leaving out pairs whose other load differed wildly
        "gui_to_headless_ratio": pairs["ratio_median_of_pairs"],
        "gui_to_headless_pairs": pairs,
        "startup_to_first_paint_s": round(startup, 3),
        "import_s": round(IMPORT_SECONDS, 3),
        "targets": {"latent_paint_ms_p50": 16, "latent_refresh_ms_p50": 16, "lag_ms_p99": 16,
                    "lag_ms_max": 50, "gui_to_headless_ratio": 0.9,
                    "startup_to_first_paint_s": 1.0},
        "threads": config.threads,
        "precision_setting": config.precision,
        # Other jobs on a shared machine inflate every figure: see load.
        **machine_line(watch, session.precision.name),
    }))


if __name__ == "__main__":
    main()
