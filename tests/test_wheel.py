"""The wheel built from the repo installs into a fresh virtual environment, and its
``latent-explorer`` launches from elsewhere with every resource found in the installed copy.

The venv reuses the running interpreter's torch and PySide6, so nothing is downloaded. It is
not made with ``--system-site-packages``: from inside a virtual environment that option reaches
the *base* interpreter's packages, not the running one's. Instead a ``.pth`` file in the venv
lists the running interpreter's site-packages folders, which works in a venv and in the base
interpreter alike. Those folders may hold an editable install of this project, so the test
checks that the venv's own copy is the one imported.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from; copied so the build's build/ and *.egg-info stay out of the repo.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "explorer", "trainer", "resources")
TIMEOUT = 120


def run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, (f"{args[:4]} exited {result.returncode}:\n"
                                    f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def resource_files(root: Path) -> set[str]:
    """Data files of the resources package (relative paths), without Python or caches."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")}


def running_site_packages() -> list[str]:
    """The running interpreter's site-packages folders (its venv's, and the base's when the venv
    sees them), in import order."""
    folders = [p for p in site.getsitepackages() if Path(p).is_dir()]
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and user in sys.path and Path(user).is_dir():
        folders.append(user)
    return [p for p in sys.path if p in folders]


def make_venv_seeing_running_packages(venv: Path, cwd: Path) -> Path:
    """A venv whose own site-packages come first, then the running interpreter's; returns its
    python. Plain folder lines in a .pth are appended to sys.path without processing the .pth
    files inside them, so an editable install of this project there is not activated."""
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=cwd)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own_site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=cwd).stdout.strip()
    (Path(own_site) / "running_interpreter_site.pth").write_text(
        "".join(f"{folder}\n" for folder in running_site_packages()))
    return python


def test_running_interpreters_packages_are_visible_in_the_test_venv(tmp_path):
    """The regression: in a venv, safetensors (installed there, not in the base) must import."""
    python = make_venv_seeing_running_packages(tmp_path / "venv", tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = ("import safetensors, torch, PySide6, pyqtgraph, superqt, platformdirs, PIL, tqdm\n"
             "print(safetensors.__file__)\n")
    line = run([python, "-c", probe], cwd=tmp_path, env=env).stdout.strip()
    import safetensors
    assert Path(line).resolve() == Path(safetensors.__file__).resolve()


def test_wheel_installs_into_a_fresh_venv_and_launches(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", dist, src], cwd=tmp_path)
    (wheel,) = dist.glob("latent_explorer-*.whl")

    venv = tmp_path / "venv"
    python = make_venv_seeing_running_packages(venv, tmp_path)
    bin_dir = python.parent
    # The system's pip installs into the venv (``--python``): no ensurepip, no network.
    # ``--ignore-installed``: the running interpreter's copy of this project (an editable
    # install, or a checkout's egg-info on PYTHONPATH) is visible there and must not count.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--ignore-installed", "--disable-pip-version-check", "-q", wheel], cwd=tmp_path, env=env)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env.update(QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    probe = ("import explorer, trainer, resources\n"
             "from importlib import resources as r\n"
             "from trainer import load_source\n"
             "print(explorer.__file__); print(trainer.__file__); print(resources.__file__)\n"
             "print(r.files('resources'))\n"
             "print(len(load_source('digits')))\n")
    lines = run([python, "-c", probe], cwd=outside, env=env).stdout.splitlines()
    venv_lib = (venv / "lib").resolve() if os.name != "nt" else (venv / "Lib").resolve()
    for line in lines[:4]:
        assert Path(line).resolve().is_relative_to(venv_lib), f"{line} is not the venv's copy"
    assert lines[4] == "1797"  # digits.npz read from the installed package
    installed = Path(lines[3])
    assert resource_files(installed) == resource_files(REPO / "resources")
    assert {"digits.npz", "help.html"} <= resource_files(installed)

    out = outside / "window.png"
    script = bin_dir / ("latent-explorer.exe" if os.name == "nt" else "latent-explorer")
    result = run([script, "--screenshot", out, "--steps", "20"], cwd=outside, env=env)
    assert "wrote" in result.stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width >= 640 and im.height >= 400
