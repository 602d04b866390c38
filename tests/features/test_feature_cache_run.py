"""The runner reads cached features for frozen encoders: epoch 2 and later runs are all hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.recipe.loading import load_recipe

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny_easyvqa.yaml"
IMAGES = 8


@pytest.fixture
def feature_root(tmp_path, monkeypatch):
    """A feature cache of this test's own (the zoo stays in the session's ABLATE_HOME)."""
    import ablate.features.cache
    from ablate.zoo import build_all

    # Built up front so that the first run does no more than the later ones (the loss comparison
    # needs runs that start from the same connector weights).
    build_all(["tiny-clip", "tiny-llama"])
    root = tmp_path / "features"
    monkeypatch.setattr(ablate.features.cache, "_default_root", lambda: root)
    return root


def instruct_only(tmp_path: Path, *overrides: str):
    """tiny_easyvqa's instruct stage, made small: 8 images, 2 epochs of 2 steps; eval on 2 test images."""
    recipe = load_recipe(TINY, [
        f"output_dir={tmp_path / 'out'}", f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"stages.1.data.sources.0.source.images_limit={IMAGES}", "stages.1.epochs=2", "stages.1.batch_size=4",
        "stages.1.trainable.llm=frozen",
        "eval.data.images_limit=2", "eval.batch_size=32", "model.encoder.name_or_path=zoo:tiny-clip",
        "model.llm.name_or_path=zoo:tiny-llama", *overrides,
    ])
    return recipe.model_copy(update={"stages": recipe.stages[1:]})


def test_second_epoch_and_later_runs_read_cached_features(tmp_path, feature_root):
    from mlflow.tracking import MlflowClient

    from ablate.run.runner import run_recipe

    first = run_recipe(instruct_only(tmp_path))
    eval_items = sum(1 for _ in first.predictions_path.open())
    # Epoch 1 encodes the training images and eval the 2 test images; epoch 2 is all hits.
    assert first.feature_cache == {"misses": IMAGES + 2, "hits": IMAGES + eval_items - 2}
    metrics = MlflowClient(first.tracking_uri).get_run(first.run_id).data.metrics
    assert (metrics["feature_cache/hits"], metrics["feature_cache/misses"]) == (IMAGES + eval_items - 2, IMAGES + 2)

    # Encoding every batch afresh trains the same model.
    plain = run_recipe(instruct_only(tmp_path, "data.feature_cache=false"), reuse_stages=False)
    assert plain.feature_cache == {}
    assert plain.stages[0].metrics["mean_loss"] == pytest.approx(first.stages[0].metrics["mean_loss"], rel=1e-5)
    assert plain.eval_metrics == first.eval_metrics

    # Another trial (another seed: nothing to reuse but the features) encodes nothing.
    other = run_recipe(instruct_only(tmp_path, "seed=7", "eval.limit=4"))
    assert other.stages[0].reused_from is None
    assert other.feature_cache == {"misses": 0, "hits": 2 * IMAGES + 4}


def test_padded_images_through_dataloader_workers_read_their_own_cache(tmp_path, feature_root):
    """A padded stage with 2 DataLoader worker processes: the cache has a folder of its own, the
    workers read it (their hits counted), and training and eval equal the uncached run's. Its
    tf32 has no GPU to use here: the run goes on and notes it."""
    import json

    from ablate.run.runner import run_recipe

    pad = ("stages.1.dataloader_workers=2", "stages.1.image_aspect_ratio=pad", "stages.1.tf32=true")
    cached = run_recipe(instruct_only(tmp_path, *pad))
    note = "tf32 ignored: no TF32 here (it needs CUDA on an Ampere or newer GPU)"
    assert cached.stages[0].notes == [note]
    assert json.loads((cached.run_dir / "summary.json").read_text())["stages"][0]["notes"] == [note]
    eval_items = sum(1 for _ in cached.predictions_path.open())
    # The images are stored before the workers start (8 misses); the workers' 2 epochs are hits.
    assert cached.feature_cache == {"misses": IMAGES + 2, "hits": 2 * IMAGES + eval_items - 2}
    (encoder_folder,) = feature_root.iterdir()
    assert sorted(p.name for p in encoder_folder.iterdir()) == ["float32-pad"]

    plain = run_recipe(instruct_only(tmp_path, *pad, "data.feature_cache=false"), reuse_stages=False)
    assert plain.stages[0].metrics["mean_loss"] == pytest.approx(cached.stages[0].metrics["mean_loss"], rel=1e-5)
    assert plain.eval_metrics == cached.eval_metrics
