"""benchmarks/throughput.py at toy size: the generator's mix665k shape, and one run of each trainer
with matching losses, ending on the `ratio` line."""

from __future__ import annotations

import re

import pytest
import torch

from bench_scripts import load_script

IGNORE = -100


@pytest.fixture(scope="module")
def bench():
    return load_script("throughput")


@pytest.fixture
def toy(bench):
    torch.set_num_threads(1)
    return bench.train_step.Sizes(
        image_size=16, patch_size=8, vision_hidden=16, vision_intermediate=32, vision_layers=2, vision_heads=2,
        llm_hidden=32, llm_intermediate=64, llm_layers=2, llm_heads=2, vocab=64,
    )


def test_the_generated_samples_are_mix665k_shaped(bench):
    samples = bench.mix665k_samples(1000, seed=0, vocab=64, visual_tokens=576, max_length=2048)
    text_only = [s for s in samples if not s.image]
    assert 0.04 < len(text_only) / len(samples) < 0.08  # ShareGPT: 40K of mix665k's 665K records
    assert all(-200 not in s.input_ids for s in text_only)
    assert all(s.input_ids.count(-200) == 1 for s in samples if s.image)
    # multi-turn: every answer ends with </s>, scored; prompts and roles are not
    answers = [s.labels.count(2) for s in samples]
    assert sum(a > 1 for a in answers) / len(samples) > 0.5 and max(answers) == 10
    for s in samples:
        assert len(s.input_ids) + 575 * s.image <= 2048  # the LLM's max_length, visual tokens counted
        assert s.scored() > 0 and s.labels[0] == IGNORE
        assert all(label in (IGNORE, token) for token, label in zip(s.input_ids, s.labels))
    ids, labels = samples[0].llava(63, 576) if samples[0].image else next(s for s in samples if s.image).llava(63, 576)
    assert ids.count(63) == 576 and len(ids) == len(labels)


def test_a_toy_run_of_each_ends_on_the_ratio_line(bench, toy, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(bench.train_step.PRESETS, "tiny", toy)
    bench.main(["--steps", "3", "--batch", "4", "--max-length", "160", "--repeats", "1", "--workdir", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"ratio \d+\.\d{3}", lines[-1])
    losses = [float(match.group(1)) for line in lines if (match := re.search(r"final loss (\S+),", line))]
    assert len(losses) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-4)
    assert any(line.startswith("48 mix665k-shaped samples") for line in lines)  # 4 x the 3 steps of 4


def test_losses_that_differ_stop_the_benchmark(bench, toy, tmp_path):
    options = bench.Options(steps=2, batch=4, max_length=160, repeats=1)
    setup = bench.build(toy, options, tmp_path)
    runs = bench.measure(options, setup, tmp_path)
    runs["llava"][0].losses[-1] *= 1.02
    with pytest.raises(SystemExit, match="not the same training"):
        bench.report(options, setup, runs, toy.visual_tokens)
