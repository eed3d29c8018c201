"""precision="auto": a real fp32-vs-bf16 race on the model's shape, cached per machine, never
choosing a precision measured slower than fp32. No timing is mocked; no assertion is on a
duration, only on what the measurements decided."""

from __future__ import annotations

import json

import pytest
import torch

from trainer import precision
from trainer.cli import main
from trainer.precision import MIN_SPEEDUP, choose_precision, machine_key, onednn_bf16_native

SHAPE = (64, 64, 128)  # small: the race takes milliseconds
native = pytest.mark.skipif(not onednn_bf16_native(),
                            reason="only a CPU with native bf16 races (others pick fp32)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path))
    precision.forget()
    yield tmp_path / precision.CACHE_NAME
    precision.forget()


def test_without_native_bf16_auto_is_fp32_without_a_race(cache):
    choice = choose_precision(SHAPE)
    if onednn_bf16_native():
        assert choice.fp32_ms is not None  # raced
    else:
        assert choice.name == "fp32" and "no native bf16" in choice.reason
        assert not cache.exists()


@native
def test_the_race_decides_and_never_picks_the_slower(cache):
    threads = torch.get_num_threads()
    choice = choose_precision(SHAPE)
    assert torch.get_num_threads() == threads  # raced on one thread, then restored
    assert not choice.cached and choice.fp32_ms > 0 and choice.bf16_ms > 0
    speedup = choice.fp32_ms / choice.bf16_ms
    if "inconclusive" in choice.reason:  # the two races disagreed: fp32, nothing cached
        assert choice.name == "fp32" and not cache.exists()
        return
    assert choice.name == ("bf16" if speedup >= MIN_SPEEDUP else "fp32"), choice
    if choice.name == "bf16":
        assert choice.bf16_ms < choice.fp32_ms
    assert choice.dtype is (torch.bfloat16 if choice.name == "bf16" else None)


@native
def test_the_cached_answer_is_reused_across_processes(cache):
    first = choose_precision(SHAPE)
    assert not first.cached
    if "inconclusive" in first.reason:  # a busy machine: nothing is kept, the next races
        assert not cache.exists() and not choose_precision(SHAPE).cached
        return
    data = json.loads(cache.read_text())
    key = machine_key(SHAPE)
    assert data["entries"][key]["name"] == first.name
    precision.forget()  # as a new process would start
    again = choose_precision(SHAPE)
    assert again.cached
    assert (again.name, again.fp32_ms, again.bf16_ms) == (first.name, first.fp32_ms,
                                                         first.bf16_ms)


@native
def test_a_corrupted_cache_file_is_ignored_and_rewritten(cache):
    cache.write_text('{"version": 2, "entries": {"broken')
    choice = choose_precision(SHAPE)
    assert not choice.cached and choice.fp32_ms is not None
    if "inconclusive" in choice.reason:
        return  # nothing to write; the corrupted file was read without harm
    data = json.loads(cache.read_text())  # valid JSON again, with the fresh answer
    assert data["entries"][machine_key(SHAPE)]["name"] == choice.name


@native
def test_an_answer_for_another_torch_or_shape_is_not_used(cache):
    other = machine_key(SHAPE).replace(torch.__version__, "0.0.1")
    planted = {"name": "fp32", "reason": "planted for another torch"}
    cache.write_text(json.dumps({"version": precision.CACHE_VERSION,
                                 "entries": {other: planted}}))
    choice = choose_precision(SHAPE)
    assert choice.reason != planted["reason"] and not choice.cached
    entries = json.loads(cache.read_text())["entries"]
    assert entries[other] == planted  # kept, beside the new answer when there is one
    assert len(entries) == (1 if "inconclusive" in choice.reason else 2)


def test_the_train_json_line_records_the_precision_and_why(cache, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["train", "digits", "--epochs", "1", "--out", str(out), "--hidden", "32,32",
                 "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["precision"] in ("fp32", "bf16") and record["precision_reason"]
    # Both clocks: training time, and the whole command (evaluations and the save too).
    assert 0 < record["train_seconds"] == record["seconds"] < record["wall_seconds"]
    assert main(["train", "digits", "--epochs", "1", "--out", str(out), "--hidden", "32,32",
                 "--precision", "fp32", "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["precision"], record["precision_reason"]) == ("fp32", "asked for")
