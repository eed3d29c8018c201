"""A Qt platform plugin that cannot load is a one-line message naming the fix, not a core dump."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.qt.platform_check import (
    chosen_platform,
    debian_package,
    missing_libraries,
    platform_problem,
    xcb_plugin,
)

REPO = Path(__file__).resolve().parents[2]


def test_sonames_map_to_debian_packages():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libX11-xcb.so.1") == "libx11-xcb1"
    assert debian_package("libEGL.so.1") == "libegl1"
    assert debian_package("libdbus-1.so.3") == "libdbus-1-3"
    assert debian_package("libglib-2.0.so.0") == "libglib2.0-0"


def test_ldd_output_is_read_for_missing_libraries():
    output = ("\tlinux-vdso.so.1 (0x00007ffd)\n"
              "\tlibxcb-icccm.so.4 => not found\n"
              "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f71)\n"
              "\tlibxcb-keysyms.so.1 => not found\n"
              "\tlibxcb-icccm.so.4 => not found\n")
    assert missing_libraries(output) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


def test_chosen_platform_reads_the_environment():
    assert chosen_platform({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert chosen_platform({"QT_QPA_PLATFORM": "xcb;offscreen"}) == "xcb"
    assert chosen_platform({"QT_QPA_PLATFORM": "vnc:size=800x600"}) == "vnc"
    if sys.platform == "linux":
        assert chosen_platform({}) == "xcb"
        assert chosen_platform({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "w0"}) == (
            "wayland")
        assert chosen_platform({"WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    # a fallback listed after xcb is Qt's to try: no refusal
    assert platform_problem({"QT_QPA_PLATFORM": "xcb;offscreen"}) is None


def real_missing_xcb_libraries() -> list[str]:
    plugin, ldd = xcb_plugin(), shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    return missing_libraries(subprocess.run([ldd, str(plugin)], capture_output=True,
                                            text=True).stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="the xcb plugin is Linux's")
def test_xcb_without_a_display_exits_2_with_one_line_naming_the_fix(tmp_path):
    """The real failing platform, in a real process: before the check, Qt aborted it (status
    134 and a core dump) after printing a hint that named one library of several."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", PYTHONPATH=str(REPO),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-m", "explorer", "digits"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latent-explorer: "), result.stderr
    missing = real_missing_xcb_libraries()
    if missing:  # this machine lacks some of the plugin's libraries: each package is named
        for soname in missing:
            assert debian_package(soname) in lines[0]
        assert "apt-get install" in lines[0]
    else:
        assert "DISPLAY" in lines[0]


def test_an_unreachable_local_display_is_named():
    problem = platform_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":987"})
    if sys.platform != "linux":
        assert problem is None
    elif real_missing_xcb_libraries():
        assert "apt-get install" in problem
    else:
        assert problem == "no X display: nothing listens on DISPLAY=:987"


def test_readme_quick_start_names_the_cpu_torch_build_and_every_xcb_package():
    from explorer.qt.platform_check import XCB_PACKAGES

    quick = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in quick
    words = set(quick.replace("`", " ").split())
    assert set(XCB_PACKAGES) <= words, set(XCB_PACKAGES) - words
