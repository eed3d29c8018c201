"""trainer/ and explorer/core/ are usable without Qt: importing all of either must not load any
Qt binding (the application model is tested, scripted and reused without a QApplication)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QT = ('PySide6', 'PyQt5', 'PyQt6', 'PySide2', 'shiboken6', 'pyqtgraph', 'qtpy', 'superqt')


def modules_of(package: str) -> list[str]:
    folder = ROOT / package.replace(".", "/")
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("package", ["trainer", "explorer.core"])
def test_imports_no_qt(package):
    modules = modules_of(package)
    assert len(modules) > 1
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + f"qt = [m for m in sys.modules if m.split('.')[0] in {QT!r}]\n"
            "print(qt)\nsys.exit(1 if qt else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
