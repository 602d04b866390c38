"""What a stage's key reads of its model blocks' files (ablate.run.stage_inputs)."""

from __future__ import annotations

import torch

from ablate.config_model import StrictModel
from ablate.fingerprint import file_fingerprint
from ablate.run.stage_inputs import _other_weight_files


class PluginConnectorConfig(StrictModel):
    """A third party's block that reads its weights from a field of its own."""

    type: str = "warm_started"
    weights: str
    select: str = "patch"
    name_or_path: str | None = None


def test_a_blocks_own_weights_file_is_fingerprinted_and_a_change_changes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.zeros(2)}, tmp_path / "proj.pt")
    block = PluginConnectorConfig(weights="proj.pt")
    before = _other_weight_files(block)
    assert before == {"weights": file_fingerprint(tmp_path / "proj.pt")}  # "patch" names no file
    torch.save({"w": torch.ones(2)}, tmp_path / "proj.pt")
    assert _other_weight_files(block) != before


def test_a_folder_of_weights_counts_and_other_paths_do_not(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"x" * 64)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not weights")
    assert set(_other_weight_files(PluginConnectorConfig(weights=str(tmp_path / "ckpt")))) == {"weights"}
    assert _other_weight_files(PluginConnectorConfig(weights=str(tmp_path / "notes"))) == {}
    assert _other_weight_files(PluginConnectorConfig(weights=str(tmp_path / "missing.pt"))) == {}
    # name_or_path is the checkpoint, fingerprinted on its own
    assert _other_weight_files(PluginConnectorConfig(weights="x", name_or_path=str(tmp_path / "ckpt"))) == {}
