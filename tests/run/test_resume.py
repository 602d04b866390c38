"""`ablate run --resume` after a SIGKILL mid-stage ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

import tiny_run

INSTRUCT_STEPS = 8


def _recipe(root: Path) -> dict:
    # instruct: 8 samples in batches of 2 are 4 steps an epoch, so the resumed part crosses into
    # the second epoch (its own shuffle); logging every 3 steps is out of step with saving every 2.
    instruct_data = {"type": "inline", "sources": [{"source": tiny_run.easy_vqa("qa", images=4), "count": 8}]}
    return tiny_run.recipe(root, [
        tiny_run.stage("align", max_steps=2),
        tiny_run.stage("instruct", data=instruct_data, template="vicuna_v1",
                       trainable={"encoder": "frozen", "connector": "full", "llm": "full"},
                       max_steps=INSTRUCT_STEPS, save_steps=2, logging_steps=3),
    ])


def _start(root: Path, *args: str) -> subprocess.Popen:
    path = tiny_run.write_recipe(root, _recipe(root))
    return subprocess.Popen(tiny_run.ablate_cmd("run", str(path), *args), cwd=tiny_run.REPO, env=tiny_run.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-5000:]
    return out


def _kill_after_first_checkpoint(proc: subprocess.Popen, stage_dir: Path, timeout: float = 300) -> Path:
    """SIGKILL `proc` as soon as the stage has a complete checkpoint (trainer_state.json is written last)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sorted(stage_dir.glob("checkpoints/checkpoint-*/trainer_state.json"))
        if done:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            return done[0].parent
        if proc.poll() is not None:
            pytest.fail("the run ended before a checkpoint of the stage was written:\n" + proc.communicate()[0][-3000:])
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no checkpoint within the time limit")


def _run_dir(root: Path) -> Path:
    (run_dir,) = (root / "out").glob("tiny-*")
    return run_dir


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    from mlflow import MlflowClient


    ref_root, root = tmp_path / "reference", tmp_path / "resumed"
    align_key, instruct_key = tiny_run.stage_keys(_recipe(root))
    # The reference runs alongside the run that gets killed (two cores, half the wait).
    reference = _start(ref_root)
    killed = _start(root)
    checkpoint = _kill_after_first_checkpoint(killed, root / "out" / "stages" / instruct_key)
    _finish(reference)

    # Killed mid-instruct: align finished and stored, instruct not; the run is known to --resume.
    stages = root / "out" / "stages"
    assert (stages / align_key / "meta.json").is_file()
    assert not (stages / instruct_key / "meta.json").exists()
    step = int(checkpoint.name.split("-")[1])
    assert step < INSTRUCT_STEPS
    run_id = json.loads((_run_dir(root) / "state.json").read_text())["mlflow_run_id"]
    align_weights = stages / align_key / "weights.safetensors"
    align_mtime = align_weights.stat().st_mtime_ns

    _finish(_start(root, "--resume"))

    got, want = tiny_run.summary(_run_dir(root)), tiny_run.summary(_run_dir(ref_root))
    # Same MLflow run, reopened and finished; align was reused, not trained again.
    assert got["run_id"] == run_id
    client = MlflowClient(tiny_run.tracking_uri(root))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["ablate.stage.align.reused_from"] == run_id
    assert runs[0].data.tags["ablate.stage.instruct.resumed_from"] == checkpoint.name
    assert got["stages"][0]["reused_from"] == run_id and align_weights.stat().st_mtime_ns == align_mtime

    # Same numbers as the uninterrupted run: losses, evaluation, predictions, weights.
    for mine, ref in zip(got["stages"], want["stages"]):
        assert mine["steps"] == ref["steps"]
        for metric in ("final_loss", "mean_loss", "grad_norm", "lr"):
            assert mine["metrics"][metric] == pytest.approx(ref["metrics"][metric], rel=1e-6, abs=1e-9), metric
    assert got["stages"][1]["steps"] == INSTRUCT_STEPS
    final = stages / instruct_key / "checkpoints" / f"checkpoint-{INSTRUCT_STEPS}" / "trainer_state.json"
    assert json.loads(final.read_text())["epoch"] == 2.0, "the resumed part should cross an epoch boundary"
    assert got["eval"] == want["eval"]
    assert (_run_dir(root) / "predictions.jsonl").read_text() == (_run_dir(ref_root) / "predictions.jsonl").read_text()
    for key in (align_key, instruct_key):
        mine, ref = tiny_run.stage_weights(root / "out", key), tiny_run.stage_weights(ref_root / "out", key)
        assert mine.keys() == ref.keys()
        for name in ref:
            assert (mine[name] - ref[name]).abs().max().item() <= 1e-6, (key, name)


def test_resume_from_a_final_checkpoint_loads_it_instead_of_training_on(tmp_path):
    """Killed after the stage's last checkpoint but before the stage was stored: Trainer would
    train one step too many from that checkpoint, so the runner loads it as the result."""
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", max_steps=3, save_steps=3)], eval=False)
    first = tiny_run.run_in_process(data)
    key = first.stages[0].key
    stage_dir = tmp_path / "out" / "stages" / key
    trained = tiny_run.stage_weights(tmp_path / "out", key)
    (stage_dir / "meta.json").unlink()
    (stage_dir / "weights.safetensors").unlink()

    again = tiny_run.run_in_process(data, resume=True)
    assert again.run_id == first.run_id
    assert again.stages[0].reused_from is None and again.stages[0].steps == 3
    for metric in ("final_loss", "mean_loss"):
        assert again.stages[0].metrics[metric] == first.stages[0].metrics[metric]
    stored = tiny_run.stage_weights(tmp_path / "out", key)
    assert stored.keys() == trained.keys() and all(stored[k].equal(trained[k]) for k in trained)
