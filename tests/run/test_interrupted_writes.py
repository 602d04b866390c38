"""A run killed in the middle of a durable write leaves state the next run reads as it was meant:
a stage either stored whole or not stored, never a mix that reads as a corrupted copy."""

from __future__ import annotations

import pytest


class Killed(BaseException):
    """Stands for the process dying at this line."""


def _die(*_args, **_kwargs):
    raise Killed


def test_a_stage_saved_again_and_killed_before_its_meta_is_not_done_not_corrupted(tmp_path, monkeypatch):
    """--no-reuse (or a stage stored without the per-epoch curve a recipe wants) trains a stored
    stage again; killed after its new weights replaced the old ones but before the new meta.json
    was written, the old meta.json would name the new weights corrupted and stop every later run."""
    import torch

    from ablate.run import stage_store
    from ablate.run.stage_store import StageStore

    store = StageStore(tmp_path / "stages")
    store.save("k", {"w": torch.zeros(3)}, {"stage": "align", "run_id": "first", "steps": 2})
    assert store.meta("k")["run_id"] == "first"

    monkeypatch.setattr(stage_store, "write_json", _die)
    with pytest.raises(Killed):
        store.save("k", {"w": torch.ones(3)}, {"stage": "align", "run_id": "second", "steps": 2})
    monkeypatch.undo()

    assert not store.is_done("k"), "half a save is no stored stage: the next run trains (or resumes) it"
    store.save("k", {"w": torch.ones(3)}, {"stage": "align", "run_id": "third", "steps": 2})
    assert store.meta("k")["run_id"] == "third"
