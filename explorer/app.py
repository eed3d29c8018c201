"""Command line entry point: ``latent-explorer [SOURCE]`` opens the window and trains.

SOURCE is anything ``trainer.load_source`` reads: ``digits`` (built in), ``mnist`` and
``fashion-mnist`` (downloaded once into the user's cache), a folder of images (subfolders are
labels), a ``.npz`` / ``.npy`` file, or an IDX file. A bad SOURCE ends with one line, status 2.

``latent-explorer train|encode|evaluate ...`` forwards to the headless commands.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HEADLESS_COMMANDS = ("train", "encode", "evaluate")
DEFAULT_SCREENSHOT_STEPS = 3000


def parse_args(argv: list[str]) -> argparse.Namespace:
    from trainer import available_devices

    p = argparse.ArgumentParser(
        prog="latent-explorer",
        description="Watch a VAE with a 2-D latent space learn. Headless commands: "
                    "latent-explorer train|encode|evaluate --help")
    p.add_argument("source", nargs="?", default="digits",
                   help="dataset: 'digits' (built in, the default), 'mnist' or "
                        "'fashion-mnist' (downloaded once), a folder of images (subfolders "
                        "are labels), or a .npz, .npy or IDX file")
    p.add_argument("--checkpoint", metavar="DIR", help="continue from a saved checkpoint")
    p.add_argument("--screenshot", metavar="PNG",
                   help="train offscreen, save a picture of the window and exit")
    p.add_argument("--steps", type=int, default=DEFAULT_SCREENSHOT_STEPS,
                   help=f"training steps before --screenshot (default {DEFAULT_SCREENSHOT_STEPS})")
    p.add_argument("--device", default="cpu", choices=available_devices(),
                   help="where the model trains (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for training (default 1: keeps a core for the window)")
    args = p.parse_args(argv)
    if args.steps < 0:
        p.error(f"--steps must be non-negative (got {args.steps})")
    if args.threads < 1:
        p.error(f"--threads must be at least 1 (got {args.threads})")
    if args.checkpoint is not None:
        p.error(f"--checkpoint {args.checkpoint}: opening checkpoints in the window is not "
                "available yet")
    return args


def load_with_progress(source: str):
    """trainer.load_source with a progress bar on stderr (downloads, big folders)."""
    from tqdm import tqdm

    from trainer import KNOWN_DATASETS, load_source

    download = source in KNOWN_DATASETS
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total or None, desc=f"loading {source}", file=sys.stderr,
                       unit="B" if download else "img", unit_scale=download,
                       unit_divisor=1024, leave=False, delay=0.5)
        bar.update(done - bar.n)

    try:
        return load_source(source, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def save_png_atomically(pixmap, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".screenshot-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        if not pixmap.save(tmp, "PNG"):
            raise OSError(f"{path}: could not encode the window as PNG")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render_screenshot(dataset, config, path: str, steps: int) -> None:
    """Train ``steps`` steps in this thread, then draw the window at its default size."""
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer

    from trainer import Session

    from .main_window import MainWindow

    window = MainWindow(dataset, config, start=False, launch=False, restore_state=False)
    try:
        session = Session(dataset, config)
        for _ in range(steps):
            if session.step() is None:
                break
        session.evaluate_heldout()
        snapshot = session.snapshot(latent_seconds=None)
        window.apply_snapshot(snapshot)
        window.apply_progress(snapshot.progress)
        window.controls.set_running(True)
        # Fill the image panel the way a user would: select a point, decode an empty spot.
        window.select_point(int(np.argmax(np.abs(snapshot.mu).sum(1))))
        window.decode_z(0.0, 0.0)
        window.show()
        # Run the event loop briefly so layouts settle and throttled views draw.
        loop = QEventLoop()
        QTimer.singleShot(500, loop.quit)
        loop.exec()
        save_png_atomically(window.grab(), path)
    finally:
        window.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HEADLESS_COMMANDS:
        from trainer.cli import main as cli_main

        return cli_main(argv)
    args = parse_args(argv)
    from trainer import ConfigError, DataError, TrainConfig

    try:
        config = TrainConfig(device=args.device, threads=args.threads)
        dataset = load_with_progress(args.source)
    except (DataError, ConfigError, OSError) as exc:
        print(f"latent-explorer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C during a download: what arrived is kept to resume
        print(f"latent-explorer: {args.source}: loading interrupted", file=sys.stderr)
        return 130

    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen needed
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("LatentExplorer")
    app.setApplicationName("Latent Explorer")
    if args.screenshot:
        try:
            render_screenshot(dataset, config, args.screenshot, args.steps)
        except OSError as exc:
            print(f"latent-explorer: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.screenshot}")
        return 0

    from .main_window import MainWindow

    window = MainWindow(dataset, config)
    window.show()
    return app.exec()
