"""Tiny recipes for the plan tests (zoo:tiny-clip and zoo:tiny-llama: seconds to build) and the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MODEL = {
    "encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip", "feature_layer": -2, "select": "patch"},
    "connector": {"type": "mlp", "depth": 2, "activation": "gelu"},
    "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"},
}


def stage(name: str, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, "data": data, "template": "plain", "lr": 1e-3, "batch_size": 4, "max_length": 128,
            "trainable": {"encoder": "frozen", "connector": "full", "llm": "frozen"}, **fields}


def easy_vqa(style: str = "caption", images: int = 20) -> dict[str, Any]:
    return {"type": "single", "source": {"type": "easy_vqa", "split": "train", "style": style, "images_limit": images}}


def tiny_recipe(**top: Any) -> dict[str, Any]:
    """Two stages: align (connector), then instruct with LoRA on the LLM and the connector."""
    stages = [stage("align", easy_vqa()),
              stage("instruct", easy_vqa("qa"), template="vicuna_v1",
                    trainable={"encoder": "frozen", "connector": "full", "llm": {"lora": {"r": 4}}}, epochs=2)]
    return {"name": "tiny_plan", "model": copy.deepcopy(MODEL), "stages": stages, **top}


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def cli(capsys, *argv: Any) -> tuple[int, str]:
    """Exit code and what `ablate ARGV` printed (in process)."""
    from ablate.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def cli_json(capsys, *argv: Any) -> dict[str, Any]:
    code, out = cli(capsys, *argv, "--json")
    assert code == 0, out
    return json.loads(out)


def build_zoo() -> None:
    """Build the two tiny zoo entries MODEL names (about 5 s), so real models and tokenizers load."""
    from ablate.zoo import resolve_checkpoint

    for name in ("zoo:tiny-clip", "zoo:tiny-llama"):
        resolve_checkpoint(name)
