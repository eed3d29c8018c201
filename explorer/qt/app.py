"""Command line entry point: ``latent-explorer [SOURCE]`` opens the window and trains.

SOURCE is anything ``trainer.load_source`` reads: ``digits`` (built in), ``mnist`` and
``fashion-mnist`` (downloaded once into the user's cache), a folder of images (subfolders are
labels), a ``.npz`` / ``.npy`` file, or an IDX file; or a saved session, ``NAME.lexp``.
``--checkpoint DIR`` opens a run trained headless (``latent-explorer train ... --out DIR``,
e.g. on a GPU server), paused, on the dataset it records (or SOURCE, when given).
A bad SOURCE or DIR ends with one line, status 2.

``latent-explorer train|encode|evaluate|inspect|export-latents ...`` forwards to the headless
commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

HEADLESS_COMMANDS = ("train", "encode", "evaluate", "inspect", "export-latents")
MAX_LATENT_DIM = 64  # as the train command allows (trainer.cli), without importing torch
DEFAULT_SCREENSHOT_STEPS = 3000


def parse_args(argv: list[str]) -> argparse.Namespace:
    from explorer.core.state import DERIVABLE
    from trainer import available_devices
    from trainer.config import ARCHS

    p = argparse.ArgumentParser(
        prog="latent-explorer",
        description="Watch a VAE learn, its latent space drawn as a plane (a chosen 2-D "
                    "view above two dimensions). Headless commands: "
                    "latent-explorer train|encode|evaluate|inspect|export-latents --help")
    p.add_argument("source", nargs="?", default=None,
                   help="dataset: 'digits' (built in, the default), 'sprites' or "
                        "'sprites-grey' (shapes made on the fly, colour or grey), 'mnist' or "
                        "'fashion-mnist' (downloaded once), a folder of images, grey or "
                        "colour (subfolders are labels), or a .npz, .npy or IDX file; or a "
                        "saved session (.lexp)")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="open a checkpoint directory (e.g. from 'latent-explorer train "
                        "--out DIR' on a GPU server), paused, on its recorded dataset")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="a new run's network: 'mlp' (the default) or 'conv' (a small conv "
                        "encoder and decoder sized from the image shape)")
    p.add_argument("--latent-dim", type=latent_dim_arg, default=None, metavar="D",
                   help=f"a new run's latent dimensions, 1 to {MAX_LATENT_DIM} (default 2: "
                        "the plane is the latent itself; above, it shows a 2-D view)")
    p.add_argument("--screenshot", metavar="PNG",
                   help="train offscreen, save a picture of the window and exit")
    p.add_argument("--run", action="append", default=[], metavar="KEY=VALUE[,...]",
                   help="with --screenshot: a run whose settings differ from the base config "
                        f"in these ({', '.join(DERIVABLE)}), e.g. --run beta=1 --run beta=4; "
                        "one JSON line per run is printed")
    p.add_argument("--steps", type=int, default=DEFAULT_SCREENSHOT_STEPS,
                   help=f"training steps before --screenshot (default {DEFAULT_SCREENSHOT_STEPS})")
    p.add_argument("--size", metavar="WxH", type=window_size_arg, default=None,
                   help="window size for --screenshot, e.g. 1366x768 (default 1400x860)")
    p.add_argument("--theme", choices=("light", "dark"), default=None,
                   help="colour theme (default: Preferences, else the system's)")
    p.add_argument("--device", default=None, choices=available_devices(),
                   help="where the model trains (default: Preferences, else cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for training (default: Preferences, else 1, which "
                        "keeps a core for the window)")
    args = p.parse_args(argv)
    if args.steps < 0:
        p.error(f"--steps must be non-negative (got {args.steps})")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1 (got {args.threads})")
    if args.run and not args.screenshot:
        p.error("--run goes with --screenshot (in the window: File > New run)")
    if len(args.run) > 4:
        p.error(f"at most 4 runs fit in one window (got {len(args.run)} --run)")
    return args


def latent_dim_arg(text: str) -> int:
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= d <= MAX_LATENT_DIM:
        raise argparse.ArgumentTypeError(f"{d}: from 1 to {MAX_LATENT_DIM} dimensions")
    return d


def window_size_arg(text: str) -> tuple[int, int]:
    """'1366x768' -> (1366, 768); argparse reports the ValueError as a one-line error."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1366x768, got "
                                         f"{text!r}") from None
    if not (320 <= width <= 8192 and 240 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"{text}: width 320-8192 and height 240-8192 pixels")
    return width, height


@dataclass
class Startup:
    """What the window opens on: a dataset and config, and a run to resume (or None)."""

    dataset: object  # trainer.ImageDataset
    config: object  # trainer.TrainConfig
    checkpoint: object = None  # trainer.Checkpoint
    loaded: object = None  # explorer.core.session_file.LoadedSession, for a .lexp SOURCE


def open_startup(source: str | None, checkpoint_dir: str | None, device: str,
                 threads: int, arch: str | None = None,
                 latent_dim: int | None = None) -> Startup:
    """Load what the command line names; raises DataError, ConfigError, CheckpointError,
    SessionFileError or OSError with a one-line message."""
    from trainer import ConfigError

    startup = _open_startup(source, checkpoint_dir, device, threads)
    changes = {k: v for k, v in (("arch", arch), ("latent_dim", latent_dim)) if v is not None}
    if changes:
        if startup.checkpoint is not None:
            raise ConfigError("--arch and --latent-dim set up a new run; a checkpoint or "
                              "session keeps its own")
        startup.config = startup.config.replace(**changes)
    return startup


def _open_startup(source: str | None, checkpoint_dir: str | None, device: str,
                  threads: int) -> Startup:
    from explorer.core.session_file import SUFFIX, LoadedSession, find_dataset, load_session
    from trainer import DataError, TrainConfig, load_checkpoint
    from trainer.cli import load_with_progress

    loaded = None
    if checkpoint_dir is not None:
        checkpoint = load_checkpoint(checkpoint_dir)
        record = LoadedSession(path=Path(checkpoint_dir), checkpoint=checkpoint, encoded=[],
                               selected_encoded=None, selected_point=None, view={}, meta={})
    elif source is not None and source.lower().endswith(SUFFIX):
        loaded = record = load_session(source)
        checkpoint = loaded.checkpoint
    else:
        return Startup(load_with_progress(source or "digits"),
                       TrainConfig(device=device, threads=threads))
    if source is not None and loaded is None:
        dataset = load_with_progress(source)  # the user says where the data is now
    else:
        dataset, reason = find_dataset(record, allow_download=True)
        if dataset is None:
            raise DataError(f"{reason}; name the dataset after the checkpoint: "
                            "latent-explorer SOURCE --checkpoint DIR")
    if tuple(dataset.image_shape) != checkpoint.image_shape:
        h, w = checkpoint.image_shape
        raise DataError(f"{checkpoint.path}: trained on {h}x{w} images, but {dataset.source} "
                        f"has {dataset.image_shape[0]}x{dataset.image_shape[1]}")
    if dataset.channels != checkpoint.channels:
        kind = {1: "grey", 3: "colour"}
        raise DataError(f"{checkpoint.path}: trained on {kind[checkpoint.channels]} images, "
                        f"but {dataset.source} is {kind[dataset.channels]}")
    return Startup(dataset, checkpoint.config.replace(device=device, threads=threads),
                   checkpoint, loaded)


def build_window(startup: Startup):
    """The main window on ``startup``: a resumed run opens paused, as it was saved."""
    from explorer.qt.window import MainWindow

    window = MainWindow(startup.dataset, startup.config, checkpoint=startup.checkpoint)
    if startup.loaded is not None:
        window.sessions.restore_extras(startup.loaded)
    return window


def render_screenshot(dataset, config, path: str, steps: int, checkpoint=None,
                      size: tuple[int, int] | None = None, runs: list[str] | None = None
                      ) -> list[dict]:
    """Train each run ``steps`` steps in this thread (the first from ``checkpoint`` when
    given), draw the window at ``size`` (default: its default size) into ``path``, and
    return one record per run (explorer.qt.screenshot)."""
    from explorer.qt.screenshot import render

    return render(dataset, config, runs or [], path, steps, checkpoint, size)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HEADLESS_COMMANDS:
        from trainer.cli import main as cli_main

        return cli_main(argv)
    args = parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen needed
    from explorer.qt.platform_check import platform_problem

    problem = platform_problem()  # before loading data; Qt would abort with a core dump
    if problem is not None:
        print(f"latent-explorer: {problem}", file=sys.stderr)
        return 2
    from explorer.core.session_file import SessionFileError
    from explorer.qt.preferences import Preferences
    from explorer.qt.window import app_icon, app_settings
    from trainer import CheckpointError, ConfigError, DataError

    prefs = Preferences.load(app_settings())
    device = args.device or prefs.device
    threads = args.threads or prefs.torch_threads
    try:
        startup = open_startup(args.source, args.checkpoint, device, threads, args.arch,
                               args.latent_dim)
    except (DataError, ConfigError, CheckpointError, SessionFileError, OSError) as exc:
        print(f"latent-explorer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C during a download: what arrived is kept to resume
        print(f"latent-explorer: {args.source}: loading interrupted", file=sys.stderr)
        return 130

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("LatentExplorer")
    app.setApplicationName("Latent Explorer")
    app.setWindowIcon(app_icon())
    from explorer.qt.theme import apply_theme

    apply_theme(app, args.theme or prefs.theme)
    if args.screenshot:
        try:
            records = render_screenshot(startup.dataset, startup.config, args.screenshot,
                                        args.steps, startup.checkpoint, args.size, args.run)
        except (ConfigError, ValueError) as exc:  # a bad --run
            print(f"latent-explorer: --run: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"latent-explorer: {exc}", file=sys.stderr)
            return 1
        import json

        for record in records:
            print(json.dumps(record))
        print(f"wrote {args.screenshot}")
        return 0

    window = build_window(startup)
    window.show()
    return app.exec()
