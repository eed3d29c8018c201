"""An export on a full disk fails with a message and leaves no file, never a truncated one
reported as saved. The file-size limit (RLIMIT_FSIZE) makes the kernel refuse writes past a
few kilobytes, as a full disk does (EFBIG instead of ENOSPC), without needing a small mount."""

from __future__ import annotations

import contextlib
import os
import resource
import signal

import numpy as np
import pytest

from explorer.qt.export import export_history_csv, export_plane_png, export_plane_svg
from explorer.qt.views.latent_view import LatentView

LIMIT = 4096  # bytes: smaller than any of these exports


@contextlib.contextmanager
def disk_full_after(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.fixture
def plane(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    view.set_latents(rng.normal(size=(2000, 2)), np.full((2000, 2), 0.2))
    return view


@pytest.mark.parametrize("export", ["svg", "png", "csv"])
def test_an_export_on_a_full_disk_raises_and_leaves_nothing(plane, tmp_path, export):
    target = tmp_path / f"plane.{export}"
    steps = np.arange(1.0, 2001.0)
    history = {"step": steps, "samples": steps, "seconds": steps, "epoch": steps,
               "elbo": -steps, "recon": -steps, "kl": steps}
    with disk_full_after(LIMIT), pytest.raises(OSError):
        if export == "svg":
            export_plane_svg(target, plane)
        elif export == "png":
            export_plane_png(target, plane)
        else:
            export_history_csv(target, history, history)
    assert os.listdir(tmp_path) == []  # neither the target nor a temporary file
    # With room again the same export works, so the failure above was the disk's.
    path = {"svg": lambda: export_plane_svg(target, plane),
            "png": lambda: export_plane_png(target, plane),
            "csv": lambda: export_history_csv(target, history, history)}[export]()
    assert path.stat().st_size > LIMIT
