"""In a short, scrolled Inspector dock every wrapped caption gets the height its lines need
(its own policy once dropped the height-for-width flag, and captions overlapped)."""

from __future__ import annotations

import pytest

from explorer.qt.docks import scrolled
from explorer.qt.views.inspector import Inspector
from explorer.qt.views.latent_view import LatentView
from trainer import Session, TrainConfig, load_source
from trainer.evidence import dataset_evidence

WAIT_MS = 20_000


@pytest.mark.parametrize("latent_dim, width", [(2, 330), (8, 300), (8, 390)])
def test_every_caption_gets_the_height_its_lines_need(qtbot, latent_dim, width):
    digits = load_source("digits")
    session = Session(digits, TrainConfig(hidden=(32, 32), latent_dim=latent_dim))
    for _ in range(10):
        session.step()
    snapshot = session.snapshot()
    plane = LatentView()
    qtbot.addWidget(plane)
    inspector = Inspector(plane.plotItem)
    area = scrolled(inspector)
    qtbot.addWidget(area)
    area.resize(width, 400)  # shorter than the panel: it scrolls
    area.show()
    qtbot.waitExposed(area)
    i = 5
    x = dataset_evidence(digits, snapshot.model.binarization, [i])[0]
    with qtbot.waitSignal(inspector.inspected, timeout=WAIT_MS):
        inspector.inspect(snapshot.model, x, digits.as_float([i]).reshape(digits.image_shape),
                          f"datapoint #{i}", snapshot.mu[i], snapshot.sigma[i])
    qtbot.wait(50)  # the layout after the new texts
    assert area.verticalScrollBar().maximum() > 0
    wrapped = [label for label in inspector.caption_labels.values() if label.isVisible()]
    assert any(label.heightForWidth(label.width()) > label.fontMetrics().height() * 1.5
               for label in wrapped)  # some captions do wrap at this width
    for label in wrapped:
        assert label.height() >= label.heightForWidth(label.width()), label.text()
