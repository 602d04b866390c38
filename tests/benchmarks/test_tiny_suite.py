"""benchmarks/tiny_suite.py: the zoo checkpoints it builds before timing are the ones the tiny arms load."""

from __future__ import annotations

from bench_scripts import load_script




def load():
    return load_script("tiny_suite")


def test_zoo_names_cover_every_tiny_arm():
    suite = load()
    assert suite.zoo_names(["connector"]) == ["tiny-clip-easyvqa", "tiny-llama-easyvqa"]
    assert suite.zoo_names(["llm_scale", "scienceqa_format"]) == [
        "tiny-clip-easyvqa", "tiny-llama-easyvqa", "tiny-llama-easyvqa-copy", "tiny-llama-large-easyvqa"]
