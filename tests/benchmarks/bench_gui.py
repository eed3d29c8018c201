"""GUI benchmark: the window live while training on 70,000 MNIST-sized points.

Prints one JSON line: event-loop lag (p50/p99/max, ms), latent refresh (snapshot arrival
to painted frame, ms), click-to-decoded-image latency (ms), training samples/s with the
GUI live as a ratio to the headless engine measured in this same run (same threads),
and startup to the first painted window after imports (s).

    python tests/benchmarks/bench_gui.py [--seconds 10] [--n 70000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
from PySide6.QtCore import (  # noqa: E402
    QElapsedTimer,
    QEvent,
    QEventLoop,
    QObject,
    QPoint,
    QPointF,
    Qt,
    QTimer,
)
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from explorer.main_window import MainWindow  # noqa: E402
from trainer import ImageDataset, Session, TrainConfig  # noqa: E402


def random_mnist(n: int, seed: int = 0) -> ImageDataset:
    """MNIST-shaped uint8 images with some structure (blurred blobs per class)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    protos = rng.random((10, 28, 28)) ** 3
    noise = rng.random((n, 28, 28), dtype=np.float32)
    pixels = (np.clip(0.7 * protos[labels] + 0.3 * noise, 0, 1) * 255).astype(np.uint8)
    return ImageDataset(pixels=pixels, scale=1 / 255, name="random MNIST-sized", source="bench",
                        labels=labels, label_names=[str(i) for i in range(10)])


def headless_rate(dataset: ImageDataset, config: TrainConfig, seconds: float) -> float:
    session = Session(dataset, config)
    for _ in range(5):  # warm-up
        session.step()
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
    """Times paints of a viewport (by running them inside an event filter) and the delay
    from each snapshot's arrival to the end of the next paint after it was applied."""

    def __init__(self, window: MainWindow):
        super().__init__()
        self.window = window
        self.first_paint: float | None = None
        self.refresh_ms: list[float] = []
        self.paint_ms: list[float] = []
        self._arrived: float | None = None
        self._applied = False
        self._inside = False
        window.worker.snapshotted.connect(self.on_snapshot)
        original = window.apply_snapshot

        def apply_and_mark(snapshot):
            original(snapshot)
            self._applied = self._arrived is not None

        window.apply_snapshot = apply_and_mark
        window.latent_view.viewport().installEventFilter(self)

    def on_snapshot(self, snapshot) -> None:
        if self._arrived is None:
            self._arrived = time.perf_counter()

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
        if self._applied:
            self.refresh_ms.append((t1 - self._arrived) * 1e3)
            self._arrived, self._applied = None, False
        return True


def empty_spots(window: MainWindow, count: int) -> list[QPoint]:
    view = window.latent_view
    vb = view.getPlotItem().vb
    (x0, x1), (y0, y1) = vb.viewRange()
    mu = window.snapshot.mu[::50]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=70_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    config = TrainConfig(threads=1)
    dataset = random_mnist(args.n)

    t_start = time.perf_counter()
    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive)
    window = MainWindow(dataset, config, restore_state=False)
    clock = PaintClock(window)
    window.show()
    wait_until(lambda: clock.first_paint is not None)
    startup = clock.first_paint - t_start

    # Let the first snapshot (every point encoded once) arrive and training settle.
    wait_until(lambda: window.snapshot is not None and window.worker.session is not None)
    run_for(2.0)
    session = window.worker.session
    clock.refresh_ms.clear()
    probe = LagProbe()
    s0, t0 = session.samples_seen, time.perf_counter()
    probe.start()
    run_for(args.seconds)
    probe.stop()
    live_rate = (session.samples_seen - s0) / (time.perf_counter() - t0)

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

    headless = headless_rate(dataset, config, args.seconds)
    print(json.dumps({
        "n_points": args.n,
        "lag_ms_p50": round(percentile(probe.lags, 50), 2),
        "lag_ms_p99": round(percentile(probe.lags, 99), 2),
        "lag_ms_max": round(max(probe.lags), 2),
        "lag_ticks": len(probe.lags),
        "latent_refresh_ms_p50": round(percentile(clock.refresh_ms, 50), 2),
        "latent_refresh_ms_max": round(max(clock.refresh_ms, default=float("nan")), 2),
        "latent_refreshes": len(clock.refresh_ms),
        "latent_paint_ms_p50": round(percentile(clock.paint_ms, 50), 2),
        "latent_paints": len(clock.paint_ms),
        "click_to_image_ms_p50": round(percentile(clicks, 50), 2),
        "click_to_image_ms_max": round(max(clicks), 2),
        "samples_per_s_gui": round(live_rate),
        "samples_per_s_headless": round(headless),
        "gui_to_headless_ratio": round(live_rate / headless, 3),
        "startup_to_first_paint_s": round(startup, 3),
        "threads": config.threads,
    }))


if __name__ == "__main__":
    main()
