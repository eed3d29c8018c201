"""The application model without Qt: runs, the current run, linked selection, view state,
config derivation, and the one event each change emits."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.state import (
    MAX_RUNS,
    RUN_COLOURS,
    AppState,
    changed_keys,
    derive_config,
    describe_changes,
    parse_changes,
)
from trainer import ConfigError, Progress, TrainConfig


class FakeDataset:  # only len() matters to the state; a real ImageDataset is tested elsewhere
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def progress(step, paused=False, heldout=None):
    return Progress(step=step, epoch=0, epoch_progress=0.0, samples_seen=step * 64,
                    seconds=0.1 * step, samples_per_second=1.0, paused=paused,
                    stopped_reason=None, train={}, heldout=heldout or {}, logpx={})


class Events:
    """Every event of the given objects, in order, as (name, args)."""

    def __init__(self, *objects):
        self.seen = []
        for obj in objects:
            for name in ("run_added", "run_removed", "current_changed", "selection_changed",
                         "z_changed", "sigma_level_changed", "schedule_changed", "name_changed",
                         "config_changed", "snapshot_changed", "progress_changed",
                         "running_changed", "failure_changed", "dataset_changed"):
                signal = getattr(obj, name, None)
                if signal is not None:
                    signal.connect(lambda *a, n=name: self.seen.append((n, a)))

    def names(self):
        out = [n for n, _ in self.seen]
        self.seen.clear()
        return out


def test_runs_get_distinct_names_and_colours_and_the_first_is_current():
    state = AppState()
    events = Events(state)
    a = state.add_run(FakeDataset(10), TrainConfig())
    assert events.names() == ["run_added", "current_changed"]
    b = state.add_run(FakeDataset(10), TrainConfig(beta=4.0), name="beta=4")
    assert events.names() == ["run_added"]  # the current run stays
    assert state.current is a and state.runs == (a, b)
    assert (a.colour, b.colour) == RUN_COLOURS[:2] and b.name == "beta=4"
    c = state.add_run(FakeDataset(10), TrainConfig(), name="beta=4")
    assert c.name == "beta=4 1"  # never two runs of one name (sessions and exports use it)
    state.add_run(FakeDataset(10), TrainConfig())
    assert len(state.runs) == MAX_RUNS
    with pytest.raises(ValueError, match="at most 4 runs"):
        state.add_run(FakeDataset(10), TrainConfig())
    assert events.names() == ["run_added", "run_added"]


def test_removing_the_current_run_passes_current_to_a_neighbour():
    state = AppState()
    a = state.add_run(FakeDataset(5), TrainConfig())
    b = state.add_run(FakeDataset(5), TrainConfig())
    state.set_current(b)
    events = Events(state)
    state.remove_run(b)
    assert state.current is a and state.runs == (a,)
    assert events.names() == ["current_changed", "run_removed"]
    with pytest.raises(ValueError, match="last run"):
        state.remove_run(a)
    with pytest.raises(ValueError, match="not one of"):
        state.set_current(b)
    assert state.add_run(FakeDataset(5), TrainConfig()).colour == RUN_COLOURS[1]  # freed


def test_selection_is_one_index_linked_across_runs_and_checked():
    state = AppState()
    state.add_run(FakeDataset(10), TrainConfig())
    state.add_run(FakeDataset(10), TrainConfig(beta=4.0))
    events = Events(state)
    state.select(np.int64(3))
    assert state.selected == 3 and type(state.selected) is int
    assert events.seen == [("selection_changed", (3,))]
    events.seen.clear()
    state.select(3)  # no change, no event: views redraw once per real change
    assert events.names() == []
    state.set_current(state.runs[1])
    assert state.selected == 3  # the same datapoint, whichever run is current
    assert events.names() == ["current_changed"]
    with pytest.raises(ValueError, match="#10 does not exist"):
        state.select(10)
    state.select(-1)
    assert state.selected is None and events.names() == ["selection_changed"]


def test_view_state_events():
    state = AppState()
    events = Events(state)
    state.set_z((0.5, -1))
    state.set_sigma_level(2)
    state.set_schedule("all")
    state.set_schedule("all")
    assert state.z == (0.5, -1.0) and state.sigma_level == 2 and state.schedule == "all"
    assert events.names() == ["z_changed", "sigma_level_changed", "schedule_changed"]
    with pytest.raises(ValueError):
        state.set_schedule("fastest")
    with pytest.raises(ValueError):
        state.set_sigma_level(3)


def test_a_run_echoes_progress_running_and_failure():
    run = AppState().add_run(FakeDataset(10), TrainConfig())
    events = Events(run)
    assert not run.running and run.heldout() == {}
    run.set_progress(progress(5, heldout={"elbo": np.array([-80.0, -70.0]),
                                          "kl": np.array([3.0, 4.0])}))
    assert events.names() == ["progress_changed", "running_changed"]
    assert run.running and run.heldout() == {"elbo": -70.0, "kl": 4.0}
    run.set_progress(progress(0))  # a reset starts over: the worker's order is the truth
    assert run.progress.step == 0 and events.names() == ["progress_changed"]
    run.set_progress(progress(5))
    assert events.names() == ["progress_changed"]
    run.set_progress(progress(6, paused=True))
    assert not run.running and events.names() == ["progress_changed", "running_changed"]
    run.set_progress(progress(7))
    run.set_failure("training stopped: RuntimeError: boom")
    assert not run.running and run.failure.startswith("training stopped")
    assert events.names() == ["progress_changed", "running_changed", "running_changed",
                              "failure_changed"]
    run.set_dataset(FakeDataset(3))
    assert run.progress is None and events.names() == ["dataset_changed"]


def test_derived_config_copies_the_base_and_validates_the_changes():
    base = TrainConfig(hidden=(64,), beta=1.0, threads=1, eval_every_seconds=0.2, seed=3)
    new = derive_config(base, beta=4.0, seed=7)
    assert (new.beta, new.seed) == (4.0, 7)
    assert (new.hidden, new.threads, new.eval_every_seconds) == ((64,), 1, 0.2)
    assert base.beta == 1.0  # a copy: the base run keeps its config
    assert changed_keys(base, new) == {"beta": 4.0, "seed": 7}
    gaussian = derive_config(base, likelihood="gaussian", hidden=[32, 32])
    assert gaussian.binarization == "none" and gaussian.hidden == (32, 32)
    assert derive_config(gaussian, likelihood="bernoulli").binarization == "dynamic"
    assert derive_config(base, likelihood="bernoulli", binarization="threshold"
                         ).binarization == "threshold"
    with pytest.raises(ConfigError, match="beta"):
        derive_config(base, beta=-1.0)
    with pytest.raises(ConfigError, match="binarization"):
        derive_config(base, likelihood="gaussian", binarization="dynamic")
    with pytest.raises(ConfigError, match="device: not a setting"):
        derive_config(base, device="cuda")


def test_run_specs_parse_into_typed_changes():
    assert parse_changes("beta=4") == {"beta": 4.0}
    changes = parse_changes("hidden=128x64, seed=2,likelihood=gaussian")
    assert changes == {"hidden": (128, 64), "seed": 2, "likelihood": "gaussian"}
    assert describe_changes(changes) == "hidden=128x64, seed=2, likelihood=gaussian"
    assert describe_changes({"beta": 4.0}) == "beta=4"
    changes = parse_changes("arch=conv,latent_dim=8")
    assert changes == {"arch": "conv", "latent_dim": 8}
    config = derive_config(TrainConfig(), **changes)
    assert (config.arch, config.latent_dim) == ("conv", 8)
    with pytest.raises(ConfigError, match="arch"):
        derive_config(TrainConfig(), arch="resnet")
    for bad, why in (("beta", "KEY=VALUE"), ("beta=x", "a number"), ("seed=1.5", "whole"),
                     ("hidden=a", "512x512"), ("device=cpu", "not a setting"),
                     ("latent_dim=2.5", "whole")):
        with pytest.raises(ValueError, match=why):
            parse_changes(bad)


def test_a_snapshot_of_the_same_step_never_overrides_the_pause_echo():
    from types import SimpleNamespace

    run = AppState().add_run(FakeDataset(10), TrainConfig())
    run.set_progress(progress(10, paused=True))  # the pause's echo
    older = SimpleNamespace(config=TrainConfig(), progress=progress(10, paused=False))
    run.set_snapshot(older)  # taken just before the pause
    assert not run.running and run.snapshot is older
    run.set_snapshot(SimpleNamespace(config=TrainConfig(beta=2.0), progress=progress(11)))
    assert run.running and run.progress.step == 11 and run.config.beta == 2.0
