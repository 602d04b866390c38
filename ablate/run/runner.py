"""Run one recipe: build the model, train each stage (reusing finished ones), evaluate, record.

Layout under `recipe.output_dir`:
    <name>-<recipe hash>/      this run: resolved recipe, predictions, state.json
    stages/<stage key>/        finished stages (weights + meta), shared by every run and trial
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

import ablate
from ablate.run.feature_plan import feature_cache_plan
from ablate.recipe.loading import recipe_hash
from ablate.recipe.schema import Recipe
from ablate.run.evaluation import EvalPlan, eval_plan, evaluate, logged_metrics
from ablate.run.execute import RunContext, StageOutcome, carry_out, log_epoch
from ablate.run.plan import StagePlan, plan_stages
from ablate.run.stage_store import StageStore, read_json, write_json
from ablate.tracking import Tracker, flatten, git_commit

__all__ = ["RunResult", "StageOutcome", "run_dir_for", "run_recipe"]


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
    plan: list[str] = field(default_factory=list)  # the stage plan, one line per stage
    eval_samples: Path | None = None  # lmms-eval's results and per-sample logs (harness lmms_eval)


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
    from ablate.ranks import ranks

    t0 = time.perf_counter()
    rhash, run_dir = recipe_hash(recipe), run_dir_for(recipe)
    writer = ranks().is_main_process  # under torchrun only rank 0 writes files and logs
    state_path = run_dir / "state.json"
    state = _resume_state(state_path) if resume else {}
    base_dir = Path(recipe_path).resolve().parent if recipe_path else None
    # Everything that can fail on bad input (checkpoints, zoo builds, data, the plan) before
    # anything is written: a bad run leaves no run folder and no MLflow run behind.
    prepared = prepare(recipe, base_dir, progress, resume=resume, reuse=reuse_stages)
    resolved_yaml = yaml.safe_dump(recipe.resolved(), sort_keys=False)
    tracker = Tracker(tracking_uri or recipe.tracking.tracking_uri, recipe.tracking.experiment, enabled=writer)
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text(resolved_yaml)
    with tracker.run(recipe.tracking.run_name or recipe.name, run_id=state.get("mlflow_run_id"),
                     parent_run_id=parent_run_id, tags=_run_tags(recipe, rhash, base_dir, tags)):
        if writer:  # --resume reopens this MLflow run
            write_json(state_path, {**state, "mlflow_run_id": tracker.run_id})
        tracker.log_params(flatten(recipe.resolved()))
        tracker.log_text(resolved_yaml, "recipe.yaml")
        result = _train_and_evaluate(recipe, prepared, run_dir, tracker, progress)
        result.run_id, result.tracking_uri, result.recipe_hash = tracker.run_id, tracker.uri, rhash
        result.seconds = time.perf_counter() - t0
        tracker.log_metrics({"run/seconds": result.seconds,
                             "run/stages_reused": sum(s.reused_from is not None for s in result.stages)})
        tracker.set_tags({"ablate.run_dir": str(run_dir.resolve())})
        if writer:
            write_json(run_dir / "summary.json", _summary(result))
            tracker.log_artifact(run_dir / "summary.json")
    return result


def _resume_state(path: Path) -> dict[str, Any]:
    """What an interrupted run left for --resume (its MLflow run id); {} when it left nothing."""
    from ablate.run.stage_store import StoredStateError

    if not path.is_file():
        return {}
    state = read_json(path, what="--resume state file")
    if not isinstance(state.get("mlflow_run_id", ""), str):
        raise StoredStateError(f"--resume state file {path} has no valid mlflow_run_id; delete it to start a new run")
    return state


def _run_tags(recipe: Recipe, rhash: str, base_dir: Path | None, extra: dict[str, str] | None) -> dict[str, str]:
    from ablate.ranks import ranks
    from ablate.threads import current_threads

    threads = current_threads()
    return {
        "ablate.recipe_hash": rhash, "ablate.version": ablate.__version__, "ablate.recipe": recipe.name,
        "ablate.world_size": str(ranks().num_processes),
        "ablate.threads": str(threads.count), "ablate.threads_reason": threads.reason,
        **_git_tags(base_dir), **recipe.tracking.tags, **(extra or {}),
    }


@dataclass
class Prepared:
    """A run before it trains: the model, the stage plan, the eval items and the feature caches."""

    vlm: Any
    store: StageStore
    plan: StagePlan
    evaluation: EvalPlan | None
    stage_features: list[Any]  # per stage: its FeatureCache or None
    eval_features: Any
    base_dir: Path | None
    reuse: bool
    lmms: Any = None  # the lmms-eval evaluation (ablate.run.lmms_harness.LmmsPlan), eval.harness lmms_eval


def prepare(recipe: Recipe, base_dir: Path | None, progress, *, resume: bool, reuse: bool) -> Prepared:
    from ablate.ranks import ranks

    vlm = _prepared_model(recipe, progress)
    store = StageStore(Path(recipe.output_dir) / "stages")
    with ranks().main_process_first():  # rank 0 generates embedded data first
        plan = plan_stages(recipe, store=store, world_size=ranks().num_processes, resume=resume, reuse=reuse)
    _check_deepspeed_configs(plan, base_dir)
    stage_features, eval_features = _feature_caches(recipe, vlm)
    harness = recipe.eval.harness if recipe.eval else None
    evaluation = eval_plan(recipe) if harness == "ablate" else None  # every rank evaluates its share
    return Prepared(vlm, store, plan, evaluation, stage_features, eval_features, base_dir, reuse,
                    lmms=_lmms_plan(recipe) if harness == "lmms_eval" else None)


def _lmms_plan(recipe):
    from ablate.run.lmms_harness import lmms_plan

    return lmms_plan(recipe)


def _check_deepspeed_configs(plan: StagePlan, base_dir: Path | None) -> None:
    """A stage to train whose DeepSpeed config is missing, unreadable or contradicts its
    max_grad_norm stops the run now, not hours later when that stage starts."""
    from ablate.run.plan import Reuse
    from ablate.train.stage import deepspeed_settings

    for entry in plan.stages:
        if not isinstance(entry.action, Reuse):
            deepspeed_settings(entry.stage, base_dir)


def join_world_for(recipe) -> None:
    """A recipe with a DeepSpeed stage, in a process no launcher started (`ablate run` on one GPU
    or CPU), gets a one-process job's environment before anything asks for ranks: DeepSpeed always
    joins a process group, and without it looks for MPI (mpi4py) instead. Under a launcher, and
    for other recipes, nothing changes. Called where a process starts (the CLI, a rehearsal
    cell), not by run_recipe: the environment it sets is the whole process's."""
    from ablate.ranks import join_one_process_world

    if any(stage.deepspeed for stage in recipe.stages):
        join_one_process_world()


def _train_and_evaluate(recipe, prepared: Prepared, run_dir, tracker, progress) -> RunResult:
    """The run as a plan and a loop: carry the stage plan out, evaluate, record."""
    p = prepared
    vlm, plan, evaluation, eval_features = p.vlm, p.plan, p.evaluation, p.eval_features
    _announce(plan, tracker, progress, [*_uncached_notes(recipe, vlm), *(p.lmms.notes if p.lmms is not None else [])])
    ctx = RunContext(recipe, vlm, p.store, tracker, progress, p.base_dir, p.reuse, p.stage_features, None)
    if evaluation is not None and plan.curve_key is not None:
        ctx.evaluate_epoch = partial(_evaluate_epoch, ctx, evaluation, eval_features, run_dir)
    outcomes = carry_out(plan, ctx)
    if ctx.skipped:
        tracker.log_metrics({"data/skipped_samples": ctx.skipped})
    eval_metrics, predictions, samples = {}, None, None
    if evaluation is not None and (res := _final_evaluation(ctx, evaluation, eval_features, run_dir)) is not None:
        eval_metrics, predictions = res.metrics, res.predictions_path  # on rank 0, which gathered
        tracker.log_metrics(logged_metrics(evaluation.evaluator, eval_metrics))
        tracker.log_artifact(predictions)
    if p.lmms is not None:
        from ablate.run.lmms_harness import run_lmms_eval

        eval_metrics, samples = run_lmms_eval(vlm, recipe, p.lmms, run_dir, tracker)
    counts, feature_counts = _record_model(recipe, vlm, [*p.stage_features, eval_features], tracker)
    return RunResult(run_dir, None, "", "", outcomes, eval_metrics, ctx.epoch_metrics, predictions, 0.0, counts,
                     int(vlm.connector.num_output_tokens), ctx.skipped, feature_cache=feature_counts, plan=plan.lines(),
                     eval_samples=samples)


def _prepared_model(recipe, progress):
    """The recipe's model, built from seeded weights after its zoo checkpoints exist."""
    # The connector (and any other freshly initialised weight) is drawn from torch's global RNG:
    # seed it so the same recipe starts from the same weights in every process (stage reuse and
    # --resume rely on it).
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    from ablate.model.build import build_vlm

    build_zoo_checkpoints(recipe.model, progress)  # a build keeps the caller's generators as they were
    set_seed(recipe.seed)
    hf_logging.disable_progress_bar()  # ablate shows its own progress; per-file loading bars are noise
    return build_vlm(recipe.model)


def _announce(plan, tracker, progress, notes: list[str]) -> None:
    """Show the plan (and what the evaluation should say first) before anything trains, and keep it with the run."""
    tracker.log_text("\n".join([*plan.lines(), *notes]) + "\n", "plan.txt")
    if progress is not None:
        for line in ["plan:", *(f"  {line}" for line in plan.lines()), *notes]:
            progress.console.print(line, highlight=False, markup=False)


def _feature_caches(recipe, vlm) -> tuple[list[Any], Any]:
    """(per stage: its feature cache or None, the eval's or None): one cache per image_aspect_ratio."""
    cache_stages, cache_eval = feature_cache_plan(recipe)
    caches: dict[str, Any] = {}

    def cache_for(mode: str):
        if mode not in caches:
            caches[mode] = _feature_cache(vlm, mode)
        return caches[mode]

    stage_features = [cache_for(s.image_aspect_ratio) if use else None for s, use in zip(recipe.stages, cache_stages)]
    ablate_eval = recipe.eval is not None and recipe.eval.harness == "ablate"  # lmms-eval's images have no paths
    eval_features = cache_for(recipe.eval_aspect_ratio()) if cache_eval and ablate_eval else None
    return stage_features, eval_features


def _evaluate_epoch(ctx, evaluation, features, run_dir: Path, epoch: int) -> None:
    from ablate.run.epoch_eval import EpochEvaluation, epoch_predictions, weights_fingerprint

    res = evaluate(ctx.vlm, evaluation, progress=ctx.progress, out=epoch_predictions(run_dir, epoch),
                   label=f"eval epoch {epoch}", features=features)
    ctx.last_epoch_eval = EpochEvaluation(epoch, weights_fingerprint(ctx.vlm), res)
    if res is None:  # not rank 0: its share went to rank 0
        return
    log_epoch(ctx, epoch, res.metrics)


def _final_evaluation(ctx, evaluation, features, run_dir: Path):
    """The run's evaluation after training: the last epoch's when the weights are still those it
    evaluated (ablate.run.epoch_eval), else a new one."""
    from ablate.run.epoch_eval import reused_final_evaluation

    out = run_dir / "predictions.jsonl"
    reused, res = reused_final_evaluation(ctx.last_epoch_eval, ctx.vlm, out)
    if reused:
        ctx.tracker.set_tags({"ablate.eval.reused_epoch": str(ctx.last_epoch_eval.epoch)})
        if ctx.progress is not None:
            ctx.progress.console.print(f"eval: the weights are those epoch {ctx.last_epoch_eval.epoch} was evaluated "
                                       "with; its predictions are the run's", highlight=False)
        return res
    return evaluate(ctx.vlm, evaluation, progress=ctx.progress, features=features, out=out)


def _record_model(recipe, vlm, features: list[Any], tracker):
    """Log what the model is (parameters, visual tokens) and what the feature caches did."""
    counts = vlm.parameter_counts()
    tracker.log_metrics({f"params/{c}/{k}": v for c, d in counts.items() for k, v in d.items()})
    tracker.log_metrics({"model/visual_tokens": int(vlm.connector.num_output_tokens)})
    tracker.set_tags({"ablate.checkpoints": str(Path(recipe.output_dir, "stages").resolve())})
    caches = list({id(c): c for c in features if c is not None}.values())
    feature_counts = {k: sum(c.counts()[k] for c in caches) for k in ("hits", "misses")} if caches else {}
    if feature_counts:
        tracker.log_metrics({f"feature_cache/{k}": v for k, v in feature_counts.items()})
    return counts, feature_counts


def _git_tags(recipe_dir: Path | None) -> dict[str, str]:
    """The commit of ablate's own source (editable installs) and of the recipe's repository."""
    tags = {}
    if code := git_commit(Path(ablate.__file__).resolve().parent):
        tags["ablate.git_commit"] = code
    if recipe_dir is not None and (recipe := git_commit(recipe_dir)) and recipe != code:
        tags["ablate.recipe_git_commit"] = recipe
    return tags


def build_zoo_checkpoints(model_section, progress=None) -> None:
    """Build the `zoo:` checkpoints a recipe names (once per ABLATE_HOME), rank 0 first."""
    from ablate.ranks import ranks

    from ablate.errors import AblateError
    from ablate.zoo import build, get_spec, is_built, zoo_names

    state = ranks()
    # Pretraining a zoo entry runs a Trainer, which under torchrun would wrap the stand-in in DDP
    # on rank 0 alone while the other ranks wait: build those in one process first.
    pretrained = [n for n in zoo_names(model_section) if get_spec(n).pretrain is not None and not is_built(n)]
    if state.num_processes > 1 and pretrained:
        raise AblateError(f"zoo checkpoint(s) {', '.join(pretrained)} are not built yet and are pretrained: build them "
                          f"in one process first (ablate zoo build {' '.join(pretrained)}), then launch the job")
    with state.main_process_first():
        for name in zoo_names(model_section):
            build(name, progress=progress if state.is_main_process else None)


def _summary(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
        "recipe_hash": result.recipe_hash,
        "seconds": result.seconds,
        "plan": result.plan,
        "stages": [s.__dict__ for s in result.stages],
        "eval": result.eval_metrics,
        "epoch_eval": result.epoch_metrics,
        "predictions": str(result.predictions_path) if result.predictions_path else None,
        "eval_samples": str(result.eval_samples) if result.eval_samples else None,
        "parameter_counts": result.parameter_counts,
        "visual_tokens": result.visual_tokens,
        "skipped_samples": result.skipped_samples,
        "feature_cache": result.feature_cache,
    }


def _feature_cache(vlm, image_aspect_ratio: str):
    """The encoder's FeatureCache for images prepared as `image_aspect_ratio`, or None for an
    encoder that cannot say what its features depend on."""
    from ablate.features.cache import FeatureCache

    from ablate.ranks import ranks

    if not getattr(vlm.encoder, "cache_key", None):
        return None
    return FeatureCache(None, vlm.encoder, image_aspect_ratio=image_aspect_ratio, label=vlm.component_label("encoder"),
                        writes=ranks().is_main_process)  # rank 0 alone writes


def _uncached_notes(recipe, vlm) -> list[str]:
    """Say so when data.feature_cache is on but the encoder cannot be cached (a plugin encoder
    without a cache_key): the setting would otherwise be dropped without a word."""
    stages, evaluation = feature_cache_plan(recipe)
    if getattr(vlm.encoder, "cache_key", None) or not (any(stages) or evaluation):
        return []
    return [(f"feature cache: off, {vlm.component_label('encoder')} has no cache_key (what its features depend "
             "on), so every batch runs the encoder")]
