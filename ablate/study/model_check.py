"""The model half of a study's check: a cell's model on the meta device (nothing loaded), its
connector's shapes against an `init_connector` file, and what each stage's `trainable` trains."""

from __future__ import annotations

from dataclasses import dataclass, field

from ablate.errors import AblateError, MissingCheckpointError
from ablate.study.named_files import Found

COMPONENTS = ("encoder", "connector", "llm")


@dataclass
class ModelCheck:
    problems: Found = field(default_factory=list)
    shapes: str = ""     # encoder features -> connector -> LLM, one line
    trainable: str = ""  # what each stage trains, one line


def check_model(recipe) -> ModelCheck:
    """Every problem of `recipe`'s model: checkpoints whose config cannot be read, shapes that do
    not connect, an init_connector file that does not fit, trainable sets that train nothing."""
    from ablate.model.build import component_on_meta, vlm_on_meta

    model = recipe.model
    parts, problems = {}, []
    for kind in ("encoder", "llm"):
        try:
            parts[kind] = component_on_meta(kind, getattr(model, kind))
        except MissingCheckpointError as error:
            reason = str(error).splitlines()[0]
            problems.append((("model", kind, "name_or_path"), f"{reason} Its shapes are not checked."))
        except AblateError as error:
            problems.append((("model", kind), str(error)))
    if problems:
        return ModelCheck(problems + _init_file_missing(model.init_connector))
    if unbuildable := [f"{kind} {getattr(model, kind).type!r}" for kind, part in parts.items() if part is None]:
        note = f"not checked: {' and '.join(unbuildable)} cannot be built on the meta device (no `meta` builder)"
        return ModelCheck(_init_file_missing(model.init_connector), note)
    try:
        vlm = vlm_on_meta(model, parts["encoder"], parts["llm"])
    except AblateError as error:
        return ModelCheck([(("model", "connector"), str(error))] + _init_file_missing(model.init_connector))
    if model.init_connector:
        from ablate.model.connector_weights import connector_file_problem

        if problem := connector_file_problem(vlm.connector, model.init_connector):
            problems.append((("model", "init_connector"), problem))
    trainable, stage_problems = _stage_trainables(vlm, recipe.stages)
    return ModelCheck(problems + stage_problems, shapes_line(vlm), trainable)


def _init_file_missing(path: str | None) -> Found:
    """Without a model to compare shapes with, at least the file must be there."""
    from ablate.model.connector_weights import find_connector_file

    if not path:
        return []
    try:
        find_connector_file(path)
    except AblateError as error:
        return [(("model", "init_connector"), str(error))]
    return []


def _stage_trainables(vlm, stages) -> tuple[str, Found]:
    """Apply each stage's `trainable` in turn, as a run does (LoRA merged before the next stage)."""
    from ablate.model.trainable import TrainableError, apply_trainable

    problems: Found = []
    lines = []
    for index, stage in enumerate(stages):
        try:
            apply_trainable(vlm, stage.trainable)
        except TrainableError as error:
            problems.append((("stages", index, "trainable", error.component), str(error).split(": ", 1)[-1]))
            continue
        counts = {name: sum(p.numel() for p in getattr(vlm, name).parameters() if p.requires_grad)
                  for name in COMPONENTS}
        for name in COMPONENTS:
            setting = getattr(stage.trainable, name)
            if setting != "frozen" and not counts[name]:
                what = "full" if setting == "full" else "lora"
                problems.append((("stages", index, "trainable", name),
                                 f"{what}, but the {name} ({type(getattr(vlm, name)).__name__}) has no parameters to train"))
        if not any(counts.values()):
            problems.append((("stages", index, "trainable"), "trains nothing: every component is frozen"))
        lines.append(f"{stage.name}: " + (" + ".join(f"{n} {_count(c)}" for n, c in counts.items() if c) or "nothing"))
    return "; ".join(lines), problems


def shapes_line(vlm) -> str:
    """e.g. "1024 x 256 tokens -> linear -> 5120 x 256 tokens"."""
    encoder, connector = vlm.encoder, vlm.connector
    kind = getattr(vlm.component_configs.get("connector"), "type", None) or type(connector).__name__
    width = vlm.llm.get_input_embeddings().embedding_dim
    return (f"{encoder.feature_dim} x {encoder.num_tokens} tokens -> {kind} -> "
            f"{width} x {getattr(connector, 'num_output_tokens', '?')} tokens")


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
