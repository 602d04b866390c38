"""benchmarks/data_prep.py: the generated file has mix665k's layout, and the measured path reaches
a first batch through the Trainer's DataLoader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import data_prep  # noqa: E402
from mix665k_shape import write_mix665k_like  # noqa: E402


def test_the_generated_file_has_mix665k_layout(tmp_path):
    path, root = write_mix665k_like(tmp_path, 400, seed=1)
    records = json.loads(path.read_text())
    text_only = [r for r in records if "image" not in r]
    assert len(records) == 400 and 5 <= len(text_only) <= 50 and all(r["model"] == "" for r in text_only)
    for record in records:
        roles = [turn["from"] for turn in record["conversations"]]
        assert roles == ["human", "gpt"] * (len(roles) // 2) and roles
        if "image" in record:
            assert (root / record["image"]).is_file() and "<image>" in record["conversations"][0]["value"]
    assert max(len(r["conversations"]) for r in records) >= 12  # multi-turn
    assert write_mix665k_like(tmp_path, 400, seed=1) == (path, root)  # made once


def test_measure_reaches_a_first_batch(tmp_path):
    path, root = write_mix665k_like(tmp_path, 120, seed=2)
    args = data_prep.parse(["--batch", "4"])
    result = data_prep.measure(path, root, tmp_path / "cache", args)
    assert result["rows"] + result["skipped"] == 120 and result["batch"]["input_ids"][0] == 4
    assert result["batch"]["input_ids"][1] <= 2048 and result["batch"]["pixel_values"][1:] == [3, 64, 64]
    assert set(result["seconds"]) == {"digest", "dataset", "first_batch", "total"} and result["peak_rss_gb"] > 0
