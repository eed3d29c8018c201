"""Before the first QApplication: can Qt's platform plugin load here?

When it cannot, Qt prints a hint naming one library and aborts the process (a core dump). This
module finds the cause first, cheaply and without importing Qt's GUI: on Linux with the xcb
plugin, the plugin's shared libraries that the loader cannot find (``ldd``), mapped to the
Debian/Ubuntu packages that ship them, and an X display that is unset or not listening.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

# Platforms that need no display server or extra system libraries.
SELF_CONTAINED_PLATFORMS = {"offscreen", "minimal", "vnc"}
# Debian package names that the soname rule below gets wrong.
PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libfreetype.so.6": "libfreetype6",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
}
# What a plain Debian/Ubuntu desktop may lack for Qt 6's xcb plugin (the README lists these).
XCB_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
                "libxcb-render-util0", "libxkbcommon-x11-0", "libxcb-xkb1", "libxcb-shape0",
                "libxcb-randr0", "libegl1")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname``, by Debian's library naming rule:
    ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` ->
    ``libxkbcommon-x11-0`` (a hyphen when the name ends in a digit)."""
    if soname in PACKAGE_EXCEPTIONS:
        return PACKAGE_EXCEPTIONS[soname]
    match = re.fullmatch(r"(.+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if match is None:
        return soname
    name, major = match.group(1).lower(), match.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames that ``ldd`` reports as ``not found``, each once, in its order."""
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def chosen_platform(env: dict) -> str:
    """The platform plugin Qt will try first (QT_QPA_PLATFORM may list several, ';'-separated;
    unset on Linux means xcb, or wayland first in a Wayland session)."""
    requested = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if requested:
        return requested
    if sys.platform != "linux":
        return "native"
    if env.get("XDG_SESSION_TYPE") == "wayland" or env.get("WAYLAND_DISPLAY"):
        return "wayland"  # Qt tries Wayland first there, then falls back to xcb
    return "xcb"


def xcb_plugin() -> Path | None:
    try:
        import PySide6  # the package only: its QtGui would load the plugin machinery
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def x_display_listening(display: str) -> bool:
    """Whether a local X display (``:N`` or ``unix:N``) accepts a connection; a remote one
    (``host:N``) is assumed to, as ssh forwarding checks its own."""
    match = re.fullmatch(r"(unix)?:(\d+)(\.\d+)?", display)
    if match is None:
        return True
    path = f"/tmp/.X11-unix/X{match.group(2)}"
    for address in ("\0" + path, path):  # Linux's abstract socket first, then the file
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return True
            except OSError:
                continue
    return False


def platform_problem(env: dict | None = None) -> str | None:
    """One line saying why Qt's platform plugin will not load here, or None when it should."""
    env = dict(os.environ) if env is None else env
    platform = chosen_platform(env)
    if platform != "xcb" or sys.platform != "linux":
        return None
    if len([p for p in env.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]) > 1:
        return None  # Qt falls back to the next platform listed
    plugin = xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is not None and ldd is not None:
        try:
            result = subprocess.run([ldd, str(plugin)], capture_output=True, text=True,
                                    timeout=10)
            missing = missing_libraries(result.stdout)
        except (OSError, subprocess.SubprocessError):
            missing = []
        if missing:
            packages = " ".join(dict.fromkeys(debian_package(s) for s in missing))
            return (f"Qt's xcb platform plugin cannot load: {', '.join(missing)} not found; "
                    f"on Debian/Ubuntu: sudo apt-get install {packages}")
    display = env.get("DISPLAY", "")
    if not display:
        return ("no X display: DISPLAY is not set (start the app from a desktop session; "
                "--screenshot needs no display)")
    if not x_display_listening(display):
        return f"no X display: nothing listens on DISPLAY={display}"
    return None
