"""Test configuration: headless Qt, one torch thread, and a guard against leaked threads."""

import os

# Set before anything imports Qt, so every widget test runs without a screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import tempfile  # noqa: E402

# The precision race's answer (trainer.precision) and downloads go to a throwaway cache,
# never the user's; tests that need their own set the variable themselves.
os.environ.setdefault("LATENT_EXPLORER_CACHE", tempfile.mkdtemp(prefix="latent-explorer-tests-"))

import pytest  # noqa: E402
import torch  # noqa: E402

# Two test workers on two cores would otherwise fight over torch's thread pool.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail any test that leaves a Python or Qt thread running (close-time bugs)."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    yield
    import sys

    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(5000)
    leaked = [t for t in threading.enumerate()
              if t.ident not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
