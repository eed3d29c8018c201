"""Preferences persist through QSettings; both palettes read well."""

from PySide6.QtCore import QSettings
from PySide6.QtGui import QPalette

from explorer.qt.preferences import Preferences, PreferencesDialog
from explorer.qt.theme import apply_theme, palette


def contrast(a, b) -> float:
    """WCAG contrast ratio between two QColors."""
    def lum(c):
        ch = [v / 255 for v in (c.red(), c.green(), c.blue())]
        ch = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_preferences_round_trip_through_settings(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    prefs = Preferences(torch_threads=2, curve_hz=10.0, latent_hz=1.5, ellipse_budget=1234,
                        theme="dark", autosave_on_quit=False)
    prefs.save(settings)
    reread = Preferences.load(QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat))
    assert reread == prefs


def test_stale_or_unavailable_values_fall_back_to_defaults(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    settings.setValue("preferences/device", "tpu")
    settings.setValue("preferences/theme", "purple")
    settings.setValue("preferences/torch_threads", "many")
    prefs = Preferences.load(settings)
    assert (prefs.device, prefs.theme, prefs.torch_threads) == ("cpu", "system", 1)


def test_dialog_returns_what_the_user_set(qtbot):
    dialog = PreferencesDialog(Preferences())
    qtbot.addWidget(dialog)
    dialog.budget.setValue(777)
    dialog.theme.setCurrentText("light")
    dialog.autosave.setChecked(False)
    prefs = dialog.preferences()
    assert (prefs.ellipse_budget, prefs.theme, prefs.autosave_on_quit) == (777, "light", False)


def test_both_palettes_have_readable_text(qapp):
    for dark in (True, False):
        pal = palette(dark)
        for fg, bg in [(QPalette.ColorRole.Text, QPalette.ColorRole.Base),
                       (QPalette.ColorRole.WindowText, QPalette.ColorRole.Window),
                       (QPalette.ColorRole.ButtonText, QPalette.ColorRole.Button),
                       (QPalette.ColorRole.HighlightedText, QPalette.ColorRole.Highlight)]:
            assert contrast(pal.color(fg), pal.color(bg)) >= 3.0, (dark, fg, bg)


def test_apply_theme_sets_the_application_palette(qapp):
    original = qapp.palette()
    try:
        assert apply_theme(qapp, "dark") is True
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert apply_theme(qapp, "light") is False
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() > 200
    finally:
        qapp.setPalette(original)
