"""FLOPs per sample: the formula by hand, and against torch's FLOP counter on a real tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from plan_helpers import tiny_recipe

from ablate.plan.flops import Shapes, model_shapes, sample_flops
from ablate.plan.params import Params, backward_through, stage_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_scripts import load_script  # noqa: E402

SHAPES = Shapes(encoder_positions=5, encoder_layers=2, encoder_width=8, encoder_intermediate=16, connector_inputs=4,
                visual_tokens=4, llm_layers=2, llm_width=16, llm_intermediate=32, vocab=32)


def params(compute: int, trainable: int) -> Params:
    return Params(compute, trainable, compute, trainable, 4 * compute, 4 * trainable)


def test_alignment_stage_by_hand():
    parts = {"encoder": params(1000, 0), "connector": params(100, 100), "llm": params(5000, 0)}
    through = backward_through(parts)
    assert through == {"encoder": False, "connector": True, "llm": True}
    llm = 4 * 5000 * 10 + 4 * 10**2 * 16 * 2 * 3  # frozen, backward through it: 4NT; attention x3
    encoder = 2 * 1000 * 5 + 4 * 5**2 * 8 * 2  # forward only
    connector = 6 * 100 * 4
    assert sample_flops(SHAPES, parts, through, 10, image=True) == llm + encoder + connector == 252_400
    assert sample_flops(SHAPES, parts, through, 10, image=False) == llm == 238_400  # text-only: no image work


def test_fine_tuning_stage_by_hand():
    parts = {"encoder": params(1000, 0), "connector": params(100, 100), "llm": params(5000, 5000)}
    through = backward_through(parts)
    assert sample_flops(SHAPES, parts, through, 10, image=True) == 6 * 5000 * 10 + 38_400 + 10_000 + 1_600 + 2_400


@pytest.mark.parametrize("llm", ["frozen", "full"])
def test_the_formula_matches_torch_flop_counter_on_a_tiny_vlm(tiny_zoo, llm):
    """One sample's forward + backward counted by FlopCounterMode (as benchmarks/train_step.py counts
    its steps) against the formula, within 2% (norm weights and the CLS position are counted as
    matmul work by the formula; embeddings, softmax and norms themselves by neither)."""
    from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.loading import recipe_from_dict

    vlm = build_vlm(recipe_from_dict(tiny_recipe()).model)
    apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": llm})
    vlm.train()
    text = torch.randint(3, 200, (1, 40), generator=torch.Generator().manual_seed(0))
    ids = torch.cat([torch.tensor([[1, IMAGE_TOKEN_INDEX]]), text], 1)
    labels = torch.cat([torch.full((1, 2), IGNORE_INDEX), text], 1)
    pixels = torch.randn(1, 3, vlm.encoder.image_size, vlm.encoder.image_size)
    counter = load_script("train_step")._flop_counter()
    with counter:
        vlm(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, pixel_values=pixels).loss.backward()
    shapes, parts = model_shapes(vlm), stage_params(vlm)
    positions = ids.shape[1] - 1 + shapes.visual_tokens
    expected = sample_flops(shapes, parts, backward_through(parts), positions, image=True)
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.02)
