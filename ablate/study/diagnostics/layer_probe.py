"""`layer_probe`: how much of an easy-VQA image's shape and colour each layer of the cells'
frozen vision encoder exposes, as the test accuracy of a linear probe on its mean-pooled
features (`ablate.eval.probe`).

For clip_layer: LLaVA takes the penultimate layer because the last one is shaped more by
CLIP's contrastive objective and keeps less detail. Whether that holds for the tiny CLIP is a
measurement: if its last layer separates shapes better than its penultimate one, the tiny
study's preference for the last layer has its reason. The probe fits on easy-VQA *train*
images and scores on *test* images; the figures are logged on one nested MLflow run.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt

from ablate.study.diagnostics.base import POINT_TAG, TAG, Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult, fmt

ATTRIBUTES = ("shape", "color")


class LayerProbeConfig(DiagnosticConfig):
    layers: list[int] | None = Field(None, description="hidden-state indexes to probe (default: every layer, -1 ... -N)")
    train_images: PositiveInt = Field(1000, description="easy-VQA train images the probes are fitted on")
    test_images: PositiveInt = Field(500, description="easy-VQA test images they are scored on")


class LayerProbe(Diagnostic):
    title = "Linear-probe accuracy of each vision-encoder layer's features"

    def record(self, ctx: DiagnosticContext, parent) -> None:
        if ctx.own_runs(self.key):
            return  # measured before: the encoder is frozen and the zoo checkpoint fixed
        encoder_config = next(iter(ctx.recipes.values())).model.encoder
        figures = probe_layers(encoder_config, self.config.layers, self.config.train_images, self.config.test_images)
        metrics = {f"probe/{layer}/{attr}": value for layer, scores in figures.items() for attr, value in scores.items()}
        log_measurement(parent, self.key, "probe", metrics)

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        runs = ctx.own_runs(self.key)
        figures = _figures(runs[-1].metrics) if runs else {}
        arm_layers = _arm_layers(ctx)
        rows = [[str(layer), ", ".join(a for a, l in arm_layers.items() if l == layer) or "-",
                 *[fmt(figures[layer].get(attr)) for attr in ATTRIBUTES]] for layer in sorted(figures, reverse=True)]
        columns = ["feature layer", "arm", *[f"{a} probe accuracy" for a in ATTRIBUTES]]
        finding = _finding(figures, arm_layers, ctx)
        return self._result(columns, rows, finding, {"layers": figures, "arm_layers": arm_layers})


def probe_layers(encoder_config, layers: list[int] | None, train_images: int, test_images: int) -> dict[int, dict[str, float]]:
    """{layer: {attribute: probe test accuracy}} for the encoder of `encoder_config` at each layer."""
    from ablate.data.sources.easyvqa import EasyVQAConfig, build_easy_vqa
    from ablate.eval.probe import mean_pooled_features, probe_accuracy
    from ablate.registry import registries

    def captions(split: str, count: int):
        return list(build_easy_vqa(EasyVQAConfig(type="easy_vqa", split=split, style="caption")).samples())[:count]

    train, test = captions("train", train_images), captions("test", test_images)
    entry = registries().encoder.get(encoder_config.type)
    base = encoder_config.model_dump(mode="json")
    if layers is None:
        depth = entry.build(base).model.config.num_hidden_layers
        layers = [-i for i in range(1, depth + 1)]
    out = {}
    for layer in layers:
        encoder = entry.build({**base, "feature_layer": layer})
        train_x = mean_pooled_features(encoder, [s["image"] for s in train])
        test_x = mean_pooled_features(encoder, [s["image"] for s in test])
        out[layer] = {attr: probe_accuracy(train_x, [s["meta"][attr] for s in train], test_x,
                                           [s["meta"][attr] for s in test]) for attr in ATTRIBUTES}
    return out


def log_measurement(parent, diagnostic: str, point: str, metrics: dict[str, float]) -> str:
    """A finished nested run of the study's parent run holding a diagnostic's figures."""
    from mlflow.entities import Metric
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    from ablate.study.parent import TAG as STUDY_TAG

    client = parent.client()
    study = client.get_run(parent.run_id).data.tags.get(STUDY_TAG, "")
    run = client.create_run(parent.experiment_id, tags={
        MLFLOW_PARENT_RUN_ID: parent.run_id, MLFLOW_RUN_NAME: f"{study} · diagnostic {diagnostic}",
        STUDY_TAG: study, TAG: diagnostic, POINT_TAG: point})
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def _figures(metrics: dict[str, float]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith("probe/"):
            _, layer, attr = key.split("/")
            out.setdefault(int(layer), {})[attr] = value
    return out


def _arm_layers(ctx: DiagnosticContext) -> dict[str, int]:
    """The feature layer each arm's cells read (a single layer; lists are left out)."""
    out = {}
    for arm in ctx.study.arm_names():
        recipe = next((r for cid, r in ctx.recipes.items() if cid.startswith(f"{arm}|seed=")), None)
        layers = getattr(recipe.model.encoder, "feature_layers", None) if recipe else None
        if layers and len(layers) == 1:
            out[arm] = layers[0]
    return out


def _finding(figures: dict[int, dict[str, float]], arm_layers: dict[str, int], ctx: DiagnosticContext) -> str:
    if not figures:
        return "not measured yet"
    measured = {arm: figures[layer] for arm, layer in arm_layers.items() if layer in figures}
    if len(measured) < 2:
        best = max(figures, key=lambda layer: figures[layer]["shape"])
        return f"shape is read best from layer {best} ({figures[best]['shape']:.3f})"
    objective = {arm: _mean(runs, ctx) for arm, runs in ctx.by_arm.items()}
    parts = [f"{attr}: " + _ranking(measured, arm_layers, attr) for attr in ATTRIBUTES]
    scored = [a for a in measured if objective.get(a) is not None]
    if len(scored) >= 2:
        winner = max(scored, key=lambda a: objective[a])
        best_shape = max(measured[a]["shape"] for a in scored)
        leaders = [a for a in scored if measured[a]["shape"] == best_shape]
        if len(leaders) > 1:
            parts.append(f"the layers of {' and '.join(leaders)} separate shape equally well, so shape does not "
                         f"explain why {winner} scored better")
        else:
            agree = "also" if winner == leaders[0] else "not"
            parts.append(f"the study's better arm ({winner}) is {agree} the one whose layer separates shape best "
                         f"({leaders[0]})")
    return "; ".join(parts) + "."


def _ranking(measured: dict[str, dict[str, float]], arm_layers: dict[str, int], attr: str) -> str:
    """"penultimate (layer -2, 0.840) > last (layer -1, 0.836)", with "=" between equal scores."""
    ranked = sorted(measured, key=lambda arm: measured[arm][attr], reverse=True)
    text = ""
    for i, arm in enumerate(ranked):
        if i:
            text += " = " if measured[arm][attr] == measured[ranked[i - 1]][attr] else " > "
        text += f"{arm} (layer {arm_layers[arm]}, {measured[arm][attr]:.3f})"
    return text


def _mean(runs, ctx: DiagnosticContext) -> float | None:
    key = ctx.metric_key(None)
    values = [r.metrics[key] for r in runs if key in r.metrics]
    return sum(values) / len(values) if values else None


def register(registry) -> None:
    registry.register("layer_probe", LayerProbeConfig, LayerProbe,
                      description="linear-probe accuracy of each vision-encoder layer (shape, colour of easy-VQA images)")
