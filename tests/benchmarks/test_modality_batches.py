"""benchmarks/modality_batches.py at a tenth of mix665k: LLaVA's sampler keeps text-only and image
samples apart in all but a few batches; text-length grouping mixes them in many."""

from __future__ import annotations

from bench_scripts import load_script




def load():
    return load_script("modality_batches")


def test_the_generated_set_is_mix665k_shaped():
    bench = load()
    words, tokens, has_image = bench.mix665k_shaped(scale=0.1)
    assert len(words) == len(tokens) == len(has_image) == 66_440
    assert has_image.count(False) == 4_069  # ShareGPT's 40,688 records, a tenth: 6.1%
    assert min(words) >= 1 and max(tokens) <= 2048


def test_llava_sampler_mixes_under_one_percent_of_batches():
    results = load().measure(scale=0.1)
    mixed, batches, _ = results["group_by_modality_length (LLaVA)"]
    assert batches == 4_153  # 66,440 / 16 per device
    # only the final leftover (each modality's last megabatch of 16 x 8) can mix: at most 16 batches
    assert 0 < mixed <= 16 and mixed / batches < 0.01
    grouped, _, _ = results["group_by_length (tokens, image = 1)"]
    assert grouped / batches > 0.1
