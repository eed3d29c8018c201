"""The command line: the screenshot mode and bad input."""

from __future__ import annotations

from PySide6.QtGui import QImage

from explorer.core.window_size import DEFAULT_SIZE
from explorer.qt.app import main


def test_screenshot_writes_a_png_of_the_default_sized_window(qapp, tmp_path):
    out = tmp_path / "shot.png"
    assert main(["digits", "--screenshot", str(out), "--steps", "30"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = QImage(str(out))
    assert (image.width(), image.height()) == DEFAULT_SIZE
    assert [p.name for p in tmp_path.iterdir()] == ["shot.png"]  # no temp file left behind


def test_unknown_source_is_a_one_line_error(qapp, capsys):
    assert main(["no-such-dataset"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latent-explorer: no-such-dataset") and "\n" not in err
