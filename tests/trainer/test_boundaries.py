"""trainer/ is usable without Qt: importing all of it must not load any Qt binding."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_trainer_imports_no_qt():
    modules = sorted(p.stem for p in (ROOT / "trainer").glob("*.py") if p.stem != "__main__")
    code = (
        "import sys\n"
        + "".join(f"import trainer.{m}\n" for m in modules if m != "__init__")
        + "import trainer\n"
        "qt = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'PyQt5', 'PyQt6', 'PySide2', 'shiboken6', 'pyqtgraph', 'qtpy', 'superqt')]\n"
        "print(qt)\n"
        "sys.exit(1 if qt else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
