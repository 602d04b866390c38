"""Run one recipe: build the model, train each stage (reusing finished ones), evaluate, record.

Layout under `recipe.output_dir`:
    <name>-<recipe hash>/      this run: resolved recipe, predictions, state.json
    stages/<stage key>/        finished stages (weights + meta), shared by every run and trial
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import ablate
from ablate.features.plan import feature_cache_plan
from ablate.recipe.loading import content_hash, recipe_hash
from ablate.recipe.schema import Recipe
from ablate.run import distributed
from ablate.run.stage_store import StageStore, stage_keys
from ablate.tracking import Tracker, flatten, git_commit


@dataclass
class StageOutcome:
    name: str
    key: str
    reused_from: str | None  # MLflow run id that trained it, when reused
    seconds: float
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    run_dir: Path
    run_id: str | None
    tracking_uri: str
    recipe_hash: str
    stages: list[StageOutcome]
    eval_metrics: dict[str, float]
    epoch_metrics: dict[int, dict[str, float]]
    predictions_path: Path | None
    seconds: float
    parameter_counts: dict[str, dict[str, int]]
    visual_tokens: int
    skipped_samples: int = 0
    feature_cache: dict[str, int] = field(default_factory=dict)


def run_dir_for(recipe: Recipe) -> Path:
    return Path(recipe.output_dir) / f"{recipe.name}-{recipe_hash(recipe)}"


def run_recipe(
    recipe: Recipe,
    *,
    recipe_path: str | Path | None = None,
    resume: bool = False,
    reuse_stages: bool = True,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    progress=None,
) -> RunResult:
    """Train and evaluate `recipe`. Pass a rich Progress to show bars."""
    t0 = time.perf_counter()
    rhash = recipe_hash(recipe)
    run_dir = run_dir_for(recipe)
    # Under torchrun only rank 0 writes the run folder and logs to MLflow.
    writer = distributed.is_rank_zero()
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text()) if (resume and state_path.is_file()) else {}
    base_dir = Path(recipe_path).resolve().parent if recipe_path else None
    resolved_yaml = yaml.safe_dump(recipe.resolved(), sort_keys=False)
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text(resolved_yaml)

    tracker = Tracker(tracking_uri or recipe.tracking.tracking_uri, recipe.tracking.experiment, enabled=writer)
    run_tags = {
        "ablate.recipe_hash": rhash, "ablate.version": ablate.__version__, "ablate.recipe": recipe.name,
        **_git_tags(base_dir),
        **recipe.tracking.tags, **(tags or {}),
    }
    with tracker.run(recipe.tracking.run_name or recipe.name, run_id=state.get("mlflow_run_id"),
                     parent_run_id=parent_run_id, tags=run_tags):
        if writer:  # --resume reopens this MLflow run
            state["mlflow_run_id"] = tracker.run_id
            state_path.write_text(json.dumps(state, indent=2))
        tracker.log_params(flatten(recipe.resolved()))
        tracker.log_text(resolved_yaml, "recipe.yaml")
        result = _train_and_evaluate(recipe, run_dir, base_dir, tracker, progress, resume, reuse_stages)
        result.run_id, result.tracking_uri, result.recipe_hash = tracker.run_id, tracker.uri, rhash
        result.seconds = time.perf_counter() - t0
        tracker.log_metrics({"run/seconds": result.seconds, "run/stages_reused": sum(s.reused_from is not None for s in result.stages)})
        tracker.set_tags({"ablate.run_dir": str(run_dir.resolve())})
        if writer:
            (run_dir / "summary.json").write_text(json.dumps(_summary(result), indent=2, default=str))
            tracker.log_artifact(run_dir / "summary.json")
    return result


def _train_and_evaluate(recipe, run_dir, base_dir, tracker, progress, resume, reuse_stages) -> RunResult:
    from ablate.data.collate import VLMCollator
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable, merge_lora
    from ablate.registry import registries
    from ablate.train.stage import run_stage
    from ablate.train.trainer import stage_state_dict

    # The connector (and any other freshly initialised weight) is drawn from torch's global RNG:
    # seed it so the same recipe starts from the same weights in every process (stage reuse and
    # --resume rely on it).
    from transformers import set_seed

    distributed.init()
    _build_zoo_checkpoints(recipe.model, progress)  # building one reseeds torch: do it before seeding
    set_seed(recipe.seed)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ablate shows its own progress; per-file loading bars are noise
    vlm = build_vlm(recipe.model)
    tokenizer, image_processor = vlm.tokenizer, vlm.image_processor
    store = StageStore(Path(recipe.output_dir) / "stages")
    keys = stage_keys(recipe)
    outcomes: list[StageOutcome] = []
    epoch_metrics: dict[int, dict[str, float]] = {}
    skipped = 0
    answer_format = recipe.answer_format
    regs = registries()
    # Frozen-encoder features, encoded once per image and read from $ABLATE_HOME/features after.
    cache_stages, cache_eval = feature_cache_plan(recipe, base_dir)
    features = _feature_cache(vlm) if any(cache_stages) or cache_eval else None
    eval_features = features if cache_eval else None

    # Rank 0 alone evaluates (the other ranks hold the same weights under DDP and ZeRO-2).
    eval_plan = _eval_plan(recipe, answer_format) if recipe.eval and distributed.is_rank_zero() else None

    # Per-epoch scores of the last stage are stored with it under this key, so a run that reuses
    # the stage replays its accuracy-vs-epoch curve instead of losing it.
    curve_key = _epoch_curve_key(recipe) if recipe.eval is not None and recipe.eval.each_epoch else None
    for index, (stage, key) in enumerate(zip(recipe.stages, keys)):
        last = index == len(recipe.stages) - 1
        wants_curve = last and curve_key is not None and eval_plan is not None
        # The lock keeps other jobs (study workers) off this stage; within a torchrun job rank 0
        # holds it and tells the other ranks whether to train or to load the stored stage.
        with store.lock(key) if distributed.is_rank_zero() else contextlib.nullcontext():
            meta = store.meta(key) if distributed.is_rank_zero() and store.is_done(key) else None
            curve = meta.get("epoch_eval", {}).get(curve_key) if meta is not None and wants_curve else None
            # A stored stage without the curve this run asks for is trained again (only rank 0 evaluates).
            if distributed.broadcast(reuse_stages and meta is not None and (curve is not None or not wants_curve)):
                store.load_into(key, vlm)
                meta = meta if meta is not None else store.meta(key)  # other ranks read it now
                outcomes.append(StageOutcome(stage.name, key, meta.get("run_id") or "?", 0.0, meta.get("steps", 0), meta.get("metrics", {})))
                tracker.set_tags({f"ablate.stage.{stage.name}.reused_from": meta.get("run_id") or "?", f"ablate.stage.{stage.name}.key": key})
                for epoch, metrics in sorted((int(e), m) for e, m in (curve or {}).items()):
                    epoch_metrics[epoch] = metrics
                    tracker.log_metrics({f"epoch_eval/{k}": v for k, v in metrics.items()}, step=epoch)
                continue
            stage_t0 = time.perf_counter()
            with distributed.main_process_first():  # rank 0 fills the data caches, the others read them
                mixture = regs.mixture.get(stage.data.type).build(stage.data, answer_format=answer_format, on_bad_sample=recipe.data.on_bad_sample)
                template = regs.template.get(stage.template.type).build(stage.template)
                dataset = _dataset(mixture, template, tokenizer, recipe, stage)
            skipped += len(mixture.skipped)
            vlm.max_length = stage.max_length
            apply_trainable(vlm, stage.trainable)
            cache = features if cache_stages[index] else None
            if cache is not None and stage.dataloader_workers > 0:
                cache.prefill(dataset["image"])  # DataLoader workers cannot run a GPU encoder
            collator = VLMCollator(tokenizer=tokenizer, image_processor=image_processor,
                                   batch_feature_lookup=cache.batch_lookup if cache is not None else None)
            def evaluate_epoch(epoch: int, _plan=eval_plan) -> None:
                res = _evaluate(vlm, tokenizer, image_processor, _plan, progress, out=None, label=f"eval epoch {epoch}",
                                features=eval_features)
                epoch_metrics[epoch] = res.metrics
                tracker.log_metrics({f"epoch_eval/{k}": v for k, v in res.metrics.items()}, step=epoch)
            result = run_stage(
                vlm=vlm, stage=stage, seed=recipe.stage_seed(stage), dataset=dataset, collator=collator,
                workdir=store.dir(key), tracker=tracker, progress=progress, resume=resume, base_dir=base_dir,
                epoch_end=evaluate_epoch if wants_curve else None,
            )
            merge_lora(vlm)
            if distributed.is_rank_zero():
                changed = stage_state_dict(vlm, stage.trainable)
                meta = {"stage": stage.name, "run_id": tracker.run_id, "steps": result.steps,
                        "seconds": result.seconds, "metrics": result.metrics}
                if wants_curve:
                    meta["epoch_eval"] = {curve_key: epoch_metrics}
                store.save(key, changed, meta)
            outcomes.append(StageOutcome(stage.name, key, None, time.perf_counter() - stage_t0, result.steps, result.metrics))
            tracker.set_tags({f"ablate.stage.{stage.name}.key": key})
    if skipped:
        tracker.log_metrics({"data/skipped_samples": skipped})

    eval_metrics: dict[str, float] = {}
    predictions = None
    if eval_plan is not None:
        res = _evaluate(vlm, tokenizer, image_processor, eval_plan, progress, out=run_dir / "predictions.jsonl",
                        features=eval_features)
        eval_metrics, predictions = res.metrics, res.predictions_path
        evaluator = eval_plan["evaluator"]
        logged = {f"{getattr(evaluator, 'metric_prefix', 'eval')}/{k}": v for k, v in eval_metrics.items()}
        # A benchmark's own names too (scienceqa/NAT, ...); eval/* stays what studies compare.
        if benchmark := getattr(evaluator, "benchmark_prefix", None):
            logged.update({f"{benchmark}/{k}": v for k, v in eval_metrics.items()})
        tracker.log_metrics(logged)
        tracker.log_artifact(predictions)
    counts = vlm.parameter_counts()
    tracker.log_metrics({f"params/{c}/{k}": v for c, d in counts.items() for k, v in d.items()})
    tracker.set_tags({"ablate.checkpoints": str(Path(recipe.output_dir, "stages").resolve())})
    feature_counts = features.counts() if features is not None else {}
    if feature_counts:
        tracker.log_metrics({f"feature_cache/{k}": v for k, v in feature_counts.items()})
    return RunResult(run_dir, None, "", "", outcomes, eval_metrics, epoch_metrics, predictions, 0.0, counts,
                     int(vlm.connector.num_output_tokens), skipped, feature_cache=feature_counts)


def _git_tags(recipe_dir: Path | None) -> dict[str, str]:
    """The commit of ablate's own source (editable installs) and of the recipe's repository."""
    tags = {}
    if code := git_commit(Path(ablate.__file__).resolve().parent):
        tags["ablate.git_commit"] = code
    if recipe_dir is not None and (recipe := git_commit(recipe_dir)) and recipe != code:
        tags["ablate.recipe_git_commit"] = recipe
    return tags


def _build_zoo_checkpoints(model_section, progress=None) -> None:
    """Build the `zoo:` checkpoints a recipe names (once per ABLATE_HOME), rank 0 first."""
    from ablate.zoo import build, zoo_names

    with distributed.main_process_first():
        for name in zoo_names(model_section):
            build(name, progress=progress if distributed.is_rank_zero() else None)


def _dataset(source, template, tokenizer, recipe, stage):
    from datasets.exceptions import DatasetGenerationError

    from ablate.data.pipeline import build_dataset
    from ablate.errors import AblateError

    try:
        return build_dataset(source, template, tokenizer, cache_dir=recipe.data.cache_dir, num_proc=recipe.data.num_proc,
                             max_length=stage.max_length, on_bad_sample=recipe.data.on_bad_sample)
    except DatasetGenerationError as exc:
        # A bad sample (on_bad_sample: error) raised inside datasets' generator: show our message.
        cause = exc.__cause__
        if isinstance(cause, AblateError):
            raise cause from None
        raise


def _eval_plan(recipe: Recipe, answer_format) -> dict[str, Any]:
    from ablate.registry import registries

    regs = registries()
    ev = recipe.eval
    template_cfg = ev.template or (recipe.stages[-1].template if recipe.stages else None)
    if template_cfg is None:
        from ablate.errors import AblateError

        raise AblateError("eval.template is required when the recipe has no stages")
    source = regs.data_source.get(ev.data.type).build(ev.data, answer_format=answer_format, on_bad_sample=recipe.data.on_bad_sample)
    samples = source.samples()
    if ev.limit:
        samples = samples[: ev.limit]
    return {
        "samples": samples,
        "template": regs.template.get(template_cfg.type).build(template_cfg),
        "evaluator": regs.evaluator.get(ev.evaluator.type).build(ev.evaluator),
        "batch_size": ev.batch_size,
        "max_new_tokens": ev.max_new_tokens,
    }


def _epoch_curve_key(recipe) -> str:
    """What per-epoch scores depend on besides the stage itself: the eval section and answer format."""
    return content_hash({"eval": recipe.eval.model_dump(mode="json"),
                         "answer_format": recipe.answer_format.model_dump(mode="json") if recipe.answer_format else None})


def _evaluate(vlm, tokenizer, image_processor, plan, progress, out, label="eval", features=None):
    from ablate.data.collate import EvalCollator
    from ablate.eval.generation import evaluate

    collator = EvalCollator(tokenizer=tokenizer, image_processor=image_processor,
                            batch_feature_lookup=features.batch_lookup if features is not None else None)
    return evaluate(
        vlm, plan["samples"], template=plan["template"], evaluator=plan["evaluator"], collator=collator,
        tokenizer=tokenizer, batch_size=plan["batch_size"], max_new_tokens=plan["max_new_tokens"],
        out_path=out, progress=progress, label=label,
    )


def _summary(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
        "recipe_hash": result.recipe_hash,
        "seconds": result.seconds,
        "stages": [s.__dict__ for s in result.stages],
        "eval": result.eval_metrics,
        "epoch_eval": result.epoch_metrics,
        "predictions": str(result.predictions_path) if result.predictions_path else None,
        "parameter_counts": result.parameter_counts,
        "visual_tokens": result.visual_tokens,
        "skipped_samples": result.skipped_samples,
        "feature_cache": result.feature_cache,
    }


def _feature_cache(vlm):
    """The encoder's FeatureCache, or None for an encoder that cannot say what its features depend on."""
    from ablate.features.cache import FeatureCache

    return FeatureCache(None, vlm.encoder) if getattr(vlm.encoder, "cache_key", None) else None
