"""What decides a stage's weights, and the content key made of it.

A stage's key covers:
- its resolved configuration (model and stage config, seeds, bad-sample policy, answer format);
- the samples it trains on: a digest of every sample's text, ids and image stamp, after the
  mixture's selection (so an edited caption, a changed image or another selection changes it),
  with the fingerprints of the data files the sources read, to name the file that changed;
- the files of every checkpoint it starts from (encoder, LLM, `init_connector`) and of the
  tokenizer, by `ablate.fingerprint`'s rule;
- the effective global batch (per-device batch x accumulation x world size);
- the previous stage's key.
Two runs (or study cells) whose first k stages agree on all of it share those stages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ablate.fingerprint import ImageStamps, content_hash, file_fingerprint

# Stage fields that change how a stage is logged, saved or computed, not the weights it produces
# (packing and the loss path give the same losses and gradients, up to float rounding).
NON_SEMANTIC_STAGE_FIELDS = {"name", "logging_steps", "save_steps", "save_total_limit", "dataloader_workers",
                             "packing", "loss"}


@dataclass(frozen=True)
class StageInputs:
    config: str                      # hash of the resolved configuration
    samples: str                     # digest of the training samples
    data_files: dict[str, str]       # data file -> fingerprint
    checkpoints: dict[str, str]      # component -> hash of its checkpoint files
    tokenizer: str
    global_batch: int
    world_size: int = field(compare=False)  # only its effect on global_batch counts
    previous: str | None = None

    @property
    def key(self) -> str:
        payload = asdict(self)
        payload.pop("world_size")
        return content_hash(payload, length=16)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def config_hash(recipe, stage, first: bool) -> str:
    from ablate.recipe.compatibility import reads_answer_format

    data = stage.data.model_dump(mode="json")
    fmt = recipe.answer_format.model_dump(mode="json") if recipe.answer_format and reads_answer_format(data) else None
    return content_hash({
        "model": recipe.model.model_dump(mode="json"),
        "answer_format": fmt,
        "on_bad_sample": recipe.data.on_bad_sample,
        "stage": stage.model_dump(mode="json", exclude=NON_SEMANTIC_STAGE_FIELDS),
        "seed": recipe.stage_seed(stage),
        # freshly initialised weights (the connector) are drawn with the recipe's seed
        "init_seed": recipe.seed if first else None,
    }, length=16)


_DIGESTS: dict[str, str] = {}  # source fingerprint -> samples digest, within this process


def samples_digest(source) -> str:
    """Digest of what a stage trains on: each sample's fields, its image by `image_stamp`.

    Memoised per source fingerprint (which changes whenever the samples would), so a study
    judging many cells over the same data reads it once."""
    if source.fingerprint not in _DIGESTS:
        _DIGESTS[source.fingerprint] = _digest(source)
    return _DIGESTS[source.fingerprint]


def _digest(samples) -> str:
    digest, stamp = hashlib.sha256(), ImageStamps()
    for sample in samples:
        image = sample.get("image")
        row = {**sample, "image": list(stamp(image)) if isinstance(image, str) else image}
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def checkpoint_inputs(model_section) -> tuple[dict[str, str], str]:
    """({component: hash of its checkpoint's files}, hash of the tokenizer's files)."""
    from ablate.components.checkpoints import checkpoint_files

    checkpoints = {}
    for name in ("encoder", "connector", "llm"):
        block = getattr(model_section, name)
        path = getattr(block, "name_or_path", None)
        if isinstance(path, str):
            checkpoints[name] = content_hash(checkpoint_files(path))
        checkpoints.update({f"{name}.{field}": value for field, value in _other_weight_files(block).items()})
    if model_section.init_connector:
        checkpoints["init_connector"] = _init_connector_fingerprint(model_section.init_connector)
    llm = model_section.llm
    tokenizer_path = getattr(llm, "tokenizer", None) or getattr(llm, "name_or_path", None)
    tokenizer = content_hash(checkpoint_files(tokenizer_path, tokenizer=True)) if tokenizer_path else "none"
    return checkpoints, tokenizer


# Block fields read elsewhere: the checkpoint (name_or_path) and the tokenizer's files.
_KNOWN_FILE_FIELDS = {"type", "name_or_path", "tokenizer"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".json")


def _other_weight_files(block) -> dict[str, str]:
    """{field: fingerprint} of a block's other string fields that name a weights file, or a folder
    holding one: a plugin may read its weights from a field of its own (`weights: proj.pt`), and
    a stage trained on the old file must not be reused after the file changes."""
    from pathlib import Path

    from ablate.fingerprint import folder_fingerprint

    found = {}
    for field, value in vars(block).items():
        if field in _KNOWN_FILE_FIELDS or not isinstance(value, str) or not value.strip():
            continue
        target = Path(value).expanduser()
        if target.is_file() and target.suffix in _WEIGHT_SUFFIXES:
            found[field] = file_fingerprint(target)
        elif target.is_dir() and any(next(target.glob(f"*{suffix}"), None) for suffix in _WEIGHT_SUFFIXES):
            found[field] = content_hash(folder_fingerprint(target))
    return found


def _init_connector_fingerprint(path: str) -> str:
    from pathlib import Path

    from ablate.fingerprint import folder_fingerprint

    target = Path(path).expanduser()
    if target.is_dir():
        return content_hash(folder_fingerprint(target))
    return file_fingerprint(target) if target.is_file() else f"missing:{path}"


def why_retrained(inputs: StageInputs, replaced: dict[str, Any] | None, previous_name: str | None) -> str:
    """Why a stage with `inputs` is not in the store, against the stored stage it replaces."""
    if replaced is None:
        return "not trained before"
    old = replaced.get("inputs") or {}
    reasons = []
    changed_files = sorted(f for f in {*inputs.data_files, *(old.get("data_files") or {})}
                           if inputs.data_files.get(f) != (old.get("data_files") or {}).get(f))
    if changed_files:
        reasons.append("data changed: " + ", ".join(changed_files))
    elif inputs.samples != old.get("samples"):
        reasons.append("data changed: the stage's samples (images, generated data or selection)")
    for component, value in inputs.checkpoints.items():
        if value != (old.get("checkpoints") or {}).get(component):
            reasons.append(f"checkpoint changed: {component}")
    if inputs.tokenizer != old.get("tokenizer"):
        reasons.append("tokenizer changed")
    if inputs.global_batch != old.get("global_batch"):
        reasons.append(f"global batch changed: {old.get('global_batch')} -> {inputs.global_batch} "
                       f"(world size {old.get('world_size')} -> {inputs.world_size})")
    if inputs.previous != old.get("previous"):
        reasons.append(f"previous stage {previous_name} changed")
    return "; ".join(reasons) or "stored under another key"
