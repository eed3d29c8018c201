"""The training controls show a legitimate CLI run's values as they are, and Reset applies
them unchanged (lr 10 showed as 1.0 and the next Reset applied 1.0; big seeds overflowed)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from explorer.qt.views.controls import Controls
from trainer import ConfigError, TrainConfig


@pytest.mark.parametrize("values", [
    {"lr": 10.0, "beta": 250.0, "batch_size": 100_000, "seed": 2**40},
    {"lr": 3e-8, "beta": 0.0, "batch_size": 1, "seed": 2**63 - 1},
    {"lr": 0.00037, "beta": 0.5, "batch_size": 128, "seed": 0}])
def test_cli_values_survive_the_controls_and_a_reset(qtbot, values):
    config = TrainConfig(**values)
    controls = Controls(TrainConfig())
    qtbot.addWidget(controls)
    controls.set_config(config)
    assert controls.lr.value() == values["lr"]
    assert controls.beta.value() == values["beta"]
    assert controls.batch.value() == values["batch_size"]
    assert controls.seed.value() == values["seed"]
    again = controls.config_for_reset(TrainConfig())
    for name, value in values.items():
        assert getattr(again, name) == value, name
    assert f"{values['lr']:.6g}" == controls.lr.text()


def test_typed_values_and_bad_seeds(qtbot):
    controls = Controls(TrainConfig())
    qtbot.addWidget(controls)
    controls.show()
    controls.lr.selectAll()
    qtbot.keyClicks(controls.lr, "2.5e-5")
    qtbot.keyClick(controls.lr, Qt.Key.Key_Return)
    assert controls.lr.value() == pytest.approx(2.5e-5)
    controls.lr.setValue(0.01)
    controls.lr.stepBy(3)  # a whole decade up
    assert controls.lr.value() == pytest.approx(0.1)
    controls.seed.setText("99999999999999999999")  # 2^63 and beyond: refused, not wrapped
    with pytest.raises(ConfigError, match="seed"):
        controls.config_for_reset(TrainConfig())
    controls.seed.setText("")
    with pytest.raises(ConfigError, match="seed"):
        controls.config_for_reset(TrainConfig())
