"""benchmarks/train_step.py: both models compute the same loss and one interleaved step runs."""

from __future__ import annotations

from bench_scripts import load_script


import pytest
import torch



@pytest.fixture(scope="module")
def bench():
    return load_script("train_step")


@pytest.fixture
def tiny(bench):
    torch.set_num_threads(1)
    return bench.Sizes(
        image_size=16, patch_size=8, vision_hidden=16, vision_intermediate=32, vision_layers=2, vision_heads=2,
        llm_hidden=32, llm_intermediate=64, llm_layers=2, llm_heads=2, vocab=64,
    )


def test_one_step_of_each_with_matching_losses_and_flops(bench, tiny, tmp_path):
    result = bench.run_benchmark(
        steps=1, warmup=0, batch=2, text_tokens=12, sizes=tiny, measure_peak=False, workdir=tmp_path
    )
    losses = result.losses_first_batch
    assert losses["ablate"] == pytest.approx(losses["llava"], abs=1e-4)
    assert losses["ablate"] == pytest.approx(torch.log(torch.tensor(64.0)).item(), abs=0.5)  # near-uniform init
    assert {name: len(times) for name, times in result.step_seconds.items()} == {"ablate": 1, "llava": 1}
    assert result.llm_tokens == 12 + 4 - 1
    # The same function does the same matmuls.
    assert result.flops_per_step["ablate"] == result.flops_per_step["llava"] > 0
    assert result.ratio > 0 and result.paired_ratio > 0


def test_both_llms_see_the_same_sequence(bench, tiny, tmp_path):
    models, batches = bench.build_pair(tiny, 3, 10, torch.device("cpu"), tmp_path)
    embeds, mask, labels = models["ablate"].embed_inputs(
        batches["ablate"]["input_ids"], batches["ablate"]["attention_mask"], batches["ablate"]["labels"],
        batches["ablate"]["pixel_values"],
    )
    assert embeds.shape[:2] == batches["llava"]["input_ids"].shape
    assert torch.equal(labels, batches["llava"]["labels"])
    assert mask.all()


def test_fairness_check_catches_different_weights(bench, tiny, tmp_path):
    models, batches = bench.build_pair(tiny, 2, 10, torch.device("cpu"), tmp_path)
    bench.check_same_loss(models, batches)
    with torch.no_grad():
        models["llava"].model.multi_modal_projector.linear_2.bias.add_(0.5)
    with pytest.raises(AssertionError, match="not the same function"):
        bench.check_same_loss(models, batches)


def test_presets_have_the_paper_shapes(bench):
    for name, hidden, layers in (("llava-7b", 4096, 32), ("llava-13b", 5120, 40)):
        sizes = bench.PRESETS[name]
        assert sizes.visual_tokens == 576  # CLIP ViT-L/14 at 336 px
        assert (sizes.vision_layers, sizes.vision_hidden, sizes.vocab) == (24, 1024, 32000)
        assert (sizes.llm_hidden, sizes.llm_layers) == (hidden, layers)
    assert bench.PRESETS["tiny"] == bench.Sizes()


def test_command_line_shape_options(bench, monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "run_benchmark", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(bench, "format_result", lambda result: "")
    bench.main(["--preset", "llava-13b", "--llm-layers", "4", "--stage", "1"])
    bench.main([])
    paper, default = calls
    assert paper["sizes"].llm_layers == 4 and paper["sizes"].llm_hidden == 5120
    assert paper["stage"] == 1 and paper["share_weights"] is True  # on by default for paper shapes
    assert default["sizes"] == bench.Sizes() and default["stage"] == 2 and default["share_weights"] is False
    with pytest.raises(SystemExit):
        bench.main(["--frozen-dtype", "bf16"])  # bf16 storage needs bf16 autocast


def test_stage1_shared_weights_one_optimizer(bench, tiny, tmp_path):
    """Stage 1 trains the connector alone; shared weights are the same Parameter objects."""
    result = bench.run_benchmark(
        steps=1, warmup=0, batch=2, text_tokens=12, sizes=tiny, measure_peak=False, workdir=tmp_path,
        stage=1, share_weights=True,
    )
    assert result.losses_first_batch["ablate"] == pytest.approx(result.losses_first_batch["llava"], abs=1e-4)
    assert result.flops_per_step["ablate"] == result.flops_per_step["llava"] > 0

    models, _ = bench.build_pair(tiny, 2, 10, torch.device("cpu"), tmp_path, stage=1, share_weights=True)
    ablate, llava = models["ablate"], models["llava"]
    assert llava.model.multi_modal_projector.linear_1.weight is ablate.connector[0].weight
    assert llava.lm_head.weight is ablate.llm.lm_head.weight
    trainable = {n for n, p in llava.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.multi_modal_projector.") for n in trainable)
    optimizers = bench.make_optimizers(models, torch.device("cpu"), share_weights=True)
    assert optimizers["ablate"] is optimizers["llava"]


def test_copied_weights_follow_ablate_dtypes_and_trainable_set(bench, tiny, tmp_path):
    models, batches = bench.build_pair(tiny, 2, 10, torch.device("cpu"), tmp_path, stage=1, frozen_dtype="bf16")
    ablate, llava = models["ablate"], models["llava"]
    assert llava.model.vision_tower.dtype == ablate.encoder.model.dtype == torch.bfloat16
    assert llava.lm_head.weight.dtype == torch.bfloat16  # frozen LLM in bf16
    assert llava.model.multi_modal_projector.linear_1.weight.dtype == torch.float32  # trained: fp32
    assert llava.lm_head.weight is not ablate.llm.lm_head.weight
    assert torch.equal(llava.lm_head.weight, ablate.llm.lm_head.weight)
    losses = bench.check_same_loss(models, batches)  # bf16 weights: compared under bf16 autocast
    assert losses["ablate"] == pytest.approx(losses["llava"], abs=bench.BF16_TOLERANCE)


def test_grad_ckpt_counts_model_flops(bench, tiny, tmp_path):
    plain = bench.run_benchmark(steps=1, warmup=0, batch=2, text_tokens=12, sizes=tiny, measure_peak=False,
                                workdir=tmp_path)
    ckpt = bench.run_benchmark(steps=1, warmup=0, batch=2, text_tokens=12, sizes=tiny, measure_peak=False,
                               workdir=tmp_path, grad_ckpt=True)
    # One sample without checkpointing, times the batch: the same FLOPs as the whole batch.
    assert ckpt.flops_per_step == plain.flops_per_step
    assert all(len(times) == 1 for times in ckpt.step_seconds.values())
