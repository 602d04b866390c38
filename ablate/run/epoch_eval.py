"""The last epoch's evaluation, taken as the run's final one when the weights have not changed.

A stage evaluated after every epoch (`eval.each_epoch`) ends on its last epoch's evaluation; the
run's evaluation after training would generate the same predictions again from the same weights
(the same plan, samples, batches and features, in eval mode). So each epoch's predictions are kept
(`predictions-epoch-N.jsonl` in the run folder), and the final evaluation reuses the last one
when the model's weights fingerprint equal those it was evaluated with. Anything that changed a
weight since (the stage's last steps after a mid-epoch stop, a LoRA merge) shows in the
fingerprint, and the run evaluates again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class EpochEvaluation:
    epoch: int
    fingerprint: tuple  # weights_fingerprint when it ran (on every rank)
    result: Any  # its EvalResult on rank 0 (predictions in `predictions_path`); None on the others


def epoch_predictions(run_dir: Path, epoch: int) -> Path:
    return run_dir / f"predictions-epoch-{epoch}.jsonl"


CHUNK = 2**22  # elements summed at a time: a float64 copy of 32 MiB, whatever the layer's size


def weights_fingerprint(module: torch.nn.Module) -> tuple:
    """Per parameter and buffer: name, dtype, shape, and three float64 sums (plain, squared and
    position-weighted), so any update of any weight changes it. Cheap next to an evaluation:
    one pass over the weights where they are, no copy to the host."""
    return tuple((name, str(tensor.dtype), tuple(tensor.shape), *_sums(tensor))
                 for name, tensor in [*module.named_parameters(), *module.named_buffers()])


def _sums(tensor: torch.Tensor) -> tuple[float, float, float]:
    total = squares = weighted = 0.0
    with torch.no_grad():
        flat = tensor.detach().reshape(-1)
        for start in range(0, flat.numel(), CHUNK):
            part = flat[start:start + CHUNK].double()
            positions = torch.arange(start, start + part.numel(), dtype=torch.float64, device=part.device)
            total += float(part.sum())
            squares += float(part.square().sum())
            weighted += float((part * (1.0 + positions / max(flat.numel(), 1))).sum())
    return total, squares, weighted


def reused_final_evaluation(last: EpochEvaluation | None, vlm, out: Path):
    """(True, the last epoch's EvalResult written to `out`, None on ranks but 0) when the weights are
    those it evaluated; (False, None) when the run must evaluate. Every rank decides alike: they
    hold the same weights."""
    if last is None or weights_fingerprint(vlm) != last.fingerprint:
        return False, None
    result = last.result
    if result is None:  # a rank that is not 0
        return True, None
    from ablate.eval.generation import EvalResult

    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.predictions_path, out)
    return True, EvalResult(result.metrics, result.records, out)
