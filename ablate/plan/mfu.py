"""Which model-FLOPs utilisation (MFU) a plan divides by, and where it comes from.

In order: `--mfu`; else what `benchmarks/train_step.py --record` measured on that GPU (its
figures file, `benchmarks/recorded/train_step.json` in the checkout: achieved model FLOP/s of one
training step over the GPU's datasheet peak), preferring steps of the same kind (LLM trained or
frozen); else DEFAULT_MFU.

DEFAULT_MFU is the one MFU with which the estimate for recipes/llava_v1_5_13b.yaml lands on
LLaVA-1.5's published 8 x A100-80G hours (README, "Sizing a run: ablate plan"): a whole-run
figure, with data loading, communication and padding in it. A recorded step is a single-GPU
benchmark without those, so plans that use one are optimistic.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import AblateError

DEFAULT_MFU = 0.3
RECORDED_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "recorded" / "train_step.json"


@dataclass(frozen=True)
class Mfu:
    value: float
    source: str


def check_mfu(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise AblateError(f"--mfu must be a fraction in (0, 1], e.g. 0.35; got {value!r}")
    return float(value)


def recorded_steps(path: Path = RECORDED_FILE) -> list[dict]:
    """The steps train_step.py recorded ([] when there is no figures file)."""
    if not path.is_file():
        return []
    try:
        steps = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise AblateError(f"{path}: not a readable JSON list of recorded steps ({error})") from None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and {"gpu", "llm_trained", "achieved_tflops"} <= set(s)
                                              for s in steps):
        raise AblateError(f"{path}: each recorded step needs gpu, llm_trained and achieved_tflops")
    return steps


def choose_mfu(given: float | None, gpu, llm_trained: bool, steps: list[dict], where: Path = RECORDED_FILE) -> Mfu:
    """The MFU for a stage on `gpu` that trains (or freezes) its LLM; `steps` were recorded in `where`."""
    if given is not None:
        return Mfu(check_mfu(given), "--mfu")
    on_gpu = [s for s in steps if s["gpu"] == gpu.key]
    same_kind = [s for s in on_gpu if bool(s["llm_trained"]) == llm_trained]
    alike = same_kind or on_gpu
    if not alike:
        return Mfu(DEFAULT_MFU, f"default: no step measured on {gpu.key} in {_shown(where)}; calibrated on "
                                "LLaVA-1.5's published hours")
    value = statistics.mean(s["achieved_tflops"] for s in alike) / gpu.bf16_tflops
    kind = ("LLM-trained " if llm_trained else "LLM-frozen ") if same_kind else ""
    return Mfu(round(value, 3), f"measured by benchmarks/train_step.py on {gpu.key}: mean of {len(alike)} {kind}"
                                f"step(s) in {_shown(where)} (one GPU, no communication: optimistic)")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
