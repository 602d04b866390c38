"""benchmarks/tiny_suite.py: the zoo checkpoints it builds before timing are the ones the tiny arms load."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tiny_suite.py"


def load():
    spec = importlib.util.spec_from_file_location("tiny_suite_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_names_cover_every_tiny_arm():
    suite = load()
    assert suite.zoo_names(["connector"]) == ["tiny-clip-easyvqa", "tiny-llama-easyvqa"]
    assert suite.zoo_names(["llm_scale", "scienceqa_format"]) == [
        "tiny-clip-easyvqa", "tiny-llama-easyvqa", "tiny-llama-large-easyvqa"]
