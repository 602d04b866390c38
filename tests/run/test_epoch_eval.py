"""The weights fingerprint that decides whether the last epoch's evaluation is the run's."""

from __future__ import annotations

import torch

from ablate.run.epoch_eval import CHUNK, weights_fingerprint


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Embedding(CHUNK // 8 + 1, 8))  # one tensor > CHUNK
    model.register_buffer("steps", torch.zeros(2))
    return model


def test_equal_weights_give_equal_fingerprints_and_any_change_another():
    model, copy = _model(), _model()
    assert weights_fingerprint(model) == weights_fingerprint(copy)
    big = copy[1].weight
    with torch.no_grad():
        big.view(-1)[CHUNK + 3] += 1e-6  # one element past the first chunk
    assert weights_fingerprint(model) != weights_fingerprint(copy)

    swapped = _model()
    flat = swapped[1].weight.data.view(-1)
    flat[[5, CHUNK + 1]] = flat[[CHUNK + 1, 5]].clone()  # the same values, other places: same sum and squares
    assert weights_fingerprint(model) != weights_fingerprint(swapped)

    buffered = _model()
    buffered.steps += 1
    assert weights_fingerprint(model) != weights_fingerprint(buffered)
