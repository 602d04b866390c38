"""What a stage's DeepSpeed config may say about things the stage itself decides.

Gradient clipping has one source, the stage's `max_grad_norm`. A config's `gradient_clipping` is
"auto" (transformers fills it from `TrainingArguments.max_grad_norm`), absent (made "auto": a
missing key means no clipping to the DeepSpeed LLaVA used, 0.12, but 1.0 to recent releases), or
the same number. Anything else is an error rather than a silent second setting.
"""

from __future__ import annotations

from typing import Any


def clipping_problem(config: dict[str, Any], max_grad_norm: float | None) -> str | None:
    """Why `config`'s gradient_clipping contradicts `max_grad_norm`, or None when it does not."""
    value = config.get("gradient_clipping", "auto")
    if value == "auto":
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and float(value) == (max_grad_norm or 0.0):
        return None
    return (f"gradient_clipping {value!r} contradicts the stage's max_grad_norm ({max_grad_norm}); "
            f'set it to "auto" or leave it out: max_grad_norm decides clipping')


def clipping_from_stage(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with gradient_clipping "auto", for transformers to fill from max_grad_norm."""
    return {**config, "gradient_clipping": "auto"}


def zero_stage(config: dict[str, Any] | None) -> int | None:
    """The ZeRO stage a DeepSpeed config asks for (None without a config or a readable stage)."""
    stage = ((config or {}).get("zero_optimization") or {}).get("stage")
    return int(stage) if isinstance(stage, (int, str)) and str(stage).isdigit() else None
