"""A legend in its own row above or below a plot's area, so it never covers data.

pyqtgraph's LegendItem is anchored inside the view box, over whatever is drawn there; put in
a layout row, its columns spread over the row's width. This one is one line of rich text per
row of entries: a coloured glyph for each sample (a dot for scatter points, a solid, dashed
or dotted bar for curves) and its name, wrapped greedily to the plot's width, in the theme's
text colour (``restyle`` redraws it when the theme changes).
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPalette
from PySide6.QtWidgets import QApplication, QSizePolicy

ABOVE_PLOT, BELOW_PLOT = 0, 4  # rows of a PlotItem's layout: the title's; under the bottom axis
FONT_POINTS = 8
GAP = "&nbsp;&nbsp;&nbsp;"


def sample_glyph(item) -> tuple[str, QColor]:
    """The glyph and colour that stand for ``item`` in a legend."""
    if isinstance(item, pg.ScatterPlotItem):
        brush = item.opts.get("brush")
        return "\u25cf", pg.mkBrush(brush).color()
    pen = pg.mkPen(item.opts.get("pen")) if hasattr(item, "opts") else pg.mkPen(None)
    style = pen.style()
    glyph = {Qt.PenStyle.DashLine: "\u254d\u254d", Qt.PenStyle.DotLine: "\u2509\u2509"}.get(
        style, "\u2501\u2501")
    return glyph, pen.color()


def text_colour() -> QColor:
    return QApplication.palette().color(QPalette.ColorRole.WindowText)


class OutsideLegend(pg.LabelItem):
    """``addItem(sample, name)``, ``clear()``, ``items`` [(sample, name)] like LegendItem's,
    drawn as wrapped rich text in a row of ``plot_item``'s layout."""

    def __init__(self, plot_item: pg.PlotItem, row: int):
        super().__init__("", size=f"{FONT_POINTS}pt", justify="left")
        self.plot_item = plot_item
        self.items: list[tuple[object, str]] = []
        self._shown = None  # what the text was drawn from
        if row == ABOVE_PLOT:  # the title's cell: these plots have no title
            plot_item.layout.removeItem(plot_item.titleLabel)
            plot_item.titleLabel.hide()
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        plot_item.layout.addItem(self, row, 1)
        plot_item.vb.sigResized.connect(self._render)
        self._render()

    def addItem(self, sample, name: str) -> None:  # noqa: N802 (LegendItem's name)
        self.items.append((sample, str(name)))
        self._render()

    def clear(self) -> None:
        self.items = []
        self._render()

    def set_items(self, items) -> None:
        """All entries at once, [(sample, name)]: one redraw (none when nothing changed)."""
        self.items = [(sample, str(name)) for sample, name in items]
        self._render()

    def restyle(self) -> None:
        """Redraw in the current theme's text colour."""
        self._render()

    def detach(self) -> None:
        """Take the legend off its plot (the plot stays)."""
        self.plot_item.vb.sigResized.disconnect(self._render)
        self.plot_item.layout.removeItem(self)
        self.setParentItem(None)
        if self.scene() is not None:
            self.scene().removeItem(self)

    def names(self) -> list[str]:
        return [name for _, name in self.items]

    def updateMin(self) -> None:  # noqa: N802 (LabelItem's hook)
        # Never as wide as the text (the row would push the plot out of its widget): the
        # text is wrapped to the plot's width instead. As tall as its lines.
        bounds = self.item.boundingRect()
        self.setMinimumWidth(0)
        self.setMinimumHeight(bounds.height())
        self.setMaximumHeight(bounds.height())
        self._sizeHint = {Qt.SizeHint.MinimumSize: (0, bounds.height()),
                          Qt.SizeHint.PreferredSize: (bounds.width(), bounds.height()),
                          Qt.SizeHint.MaximumSize: (-1, -1), Qt.SizeHint.MinimumDescent: (0, 0)}
        self.updateGeometry()

    def _render(self, *args) -> None:
        # Redrawn on every resize and entry change; setText relays out the whole plot, so
        # only when the text differs.
        key = (tuple((sample_glyph(s), n) for s, n in self.items), self.plot_item.vb.width(),
               text_colour().name())
        if key == self._shown:
            return
        self._shown = key
        if not self.items:
            self.setText("")
            self.setMaximumHeight(0)
            self.setMinimumHeight(0)
            return
        font = QFont()
        font.setPointSizeF(FONT_POINTS)
        metrics = QFontMetricsF(font)
        width = max(self.plot_item.vb.width(), 200.0)
        gap = metrics.horizontalAdvance("   ")
        lines, line, used = [], [], 0.0
        for sample, name in self.items:
            glyph, colour = sample_glyph(sample)
            entry = (f"<span style='color:{colour.name()}'>{glyph}</span>&nbsp;"
                     f"{html.escape(name)}")
            need = metrics.horizontalAdvance(f"{glyph} {name}") * 1.1 + (gap if line else 0)
            if line and used + need > width:
                lines.append(GAP.join(line))
                line, used = [], 0.0
                need -= gap
            line.append(entry)
            used += need
        lines.append(GAP.join(line))
        self.setText("<br>".join(lines), color=text_colour().name())
