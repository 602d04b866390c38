"""Diagnostics: declared in the study file, run with the study, printed under the verdict."""

from __future__ import annotations

import copy
import json
import os

import pytest
import yaml

from ablate.errors import AblateError
from ablate.study.collect import CellRun
from ablate.study.diagnostics.base import DiagnosticRun
from ablate.study.diagnostics.run import context
from ablate.study.diagnostics.registry import diagnostics
from ablate.study.parent import nested_runs, saved_parent
from ablate.study.report import REPORT_JSON, REPORT_MD
from ablate.study.runner import run_study
from ablate.study.schema import StudyError, load_study
from study_fakes import STUDY, fake_run, quiet_console, run_log, write_project


def study_with(diagnostics_block, **scale_edits):
    study = copy.deepcopy(STUDY)
    study["diagnostics"] = diagnostics_block
    study["scales"]["tiny"].update(scale_edits)
    return study


def run(**kwargs):
    return run_study("demo", scale="tiny", run_fn=fake_run, console=quiet_console(), **kwargs)


# --- the study file --------------------------------------------------------------------------


@pytest.mark.parametrize("block, message", [
    ([{"type": "platea"}], "unknown diagnostic 'platea'. Did you mean 'plateau'?"),
    ([{"type": "plateau", "arm": "mlp3"}], "unknown arm 'mlp3'"),
    ([{"type": "plateau"}, {"type": "plateau"}], "diagnostic 'plateau' is declared twice"),
    ([{"type": "stage_length", "epochs": [0]}], "diagnostics.0.epochs.0"),
    ([{"type": "stage_length", "colour": 1}], "diagnostics.0.colour"),
    ([{"type": "layer_probe", "scales": ["huge"]}], "diagnostics.0.scales.0"),
])
def test_bad_diagnostics_are_named_in_the_study_file(tmp_path, block, message):
    path = write_project(tmp_path, study_with(block))
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_study(path)


def test_the_shipped_studies_declare_a_diagnostic_each():
    from ablate.study.discovery import available

    declared = {name: [d.type for d in load_study(path).spec.diagnostics] for name, path in available().items()}
    assert declared == {"clip_layer": ["layer_probe"], "connector": ["stage_length"], "data_types": ["stage_length"],
                        "llm_scale": ["stage_length"], "scienceqa_format": ["plateau", "option_naming", "answer_pieces",
                                                                     "variant"],
                        "skip_pretraining": ["stage_length"]}


def test_tiny_and_small_studies_run_three_seeds_by_default():
    from ablate.study.cells import seeds_for
    from ablate.study.discovery import available

    for name, path in available().items():
        study = load_study(path)
        assert {scale: len(seeds_for(study, scale)) for scale in ("tiny", "small")} == {"tiny": 3, "small": 3}, name
        assert len(seeds_for(study, "tiny", 1)) == 1  # --seeds still overrides (the suite benchmark passes 1)


def test_the_registry_lists_the_built_ins():
    assert diagnostics().names() == ["answer_pieces", "layer_probe", "option_naming", "plateau", "stage_length",
                                     "variant"]


# --- plateau: read from the cells' per-epoch curves --------------------------------------------


def cell(arm, seed, curve, **metrics):
    return CellRun(f"r-{arm}-{seed}", f"{arm}|seed={seed}", arm, seed, {}, metrics, epochs={"accuracy": curve})


def test_plateau_epochs_per_seed_and_the_finding(tmp_path):
    study = load_study(write_project(tmp_path, study_with([{"type": "plateau", "arm": "mlp2", "tolerance": 0.02}])))
    runs = [cell("mlp2", 7, {1: 50.0, 2: 59.0, 3: 60.0, 4: 60.5}), cell("mlp2", 8, {1: 58.0, 2: 59.5, 3: 59.0}),
            cell("linear", 7, {1: 40.0, 2: 50.0, 3: 55.0, 4: 56.5}), cell("linear", 8, {1: 40.0, 2: 51.5, 3: 53.9})]
    ctx = context(study, "tiny", runs, {}, [], item_scale=lambda metric: 100.0)
    result = diagnostics().get("plateau").build({"type": "plateau", "arm": "mlp2", "tolerance": 0.02}).result(ctx)
    # within 2 points of each seed's best: mlp2 epochs 2 and 1; linear epochs 3 and 3
    assert result.data["arms"]["mlp2"]["by_seed"] == {7: 2, 8: 1}
    assert result.data["arms"]["linear"]["by_seed"] == {7: 3, 8: 3}
    assert result.data["arms"]["mlp2"]["mean"] == 1.5 and result.data["arms"]["linear"]["std"] == 0.0
    # linear seed 7 gained 1.5 points at its last epoch (within tolerance), seed 8 2.4 (still rising)
    assert result.rows[0] == ["linear", "3, 3", "3.00 ± 0.00", "55.2", "4", "8"]
    assert result.rows[1][-1] == "none"
    assert result.finding == (
        "mlp2 plateaus 1.50 epoch(s) earlier than linear (mean plateau epoch 1.50 vs 3.00; earlier in 2 of 2 "
        "seed(s)): supports \"mlp2 converges faster\"; still rising at the last epoch (no plateau within the epochs "
        "run, so those plateau epochs are lower bounds and the comparison is open): linear in 1 of 2 seed(s). "
        "Plateau: first epoch within 2 of the seed's best accuracy.")


def test_levelling_off_earlier_at_a_lower_score_is_not_faster_convergence(tmp_path):
    study = load_study(write_project(tmp_path, study_with([{"type": "plateau", "arm": "mlp2"}])))
    runs = [cell("mlp2", 7, {1: 4.0, 2: 20.0, 3: 44.0, 4: 45.0}), cell("linear", 7, {1: 14.0, 2: 32.0, 3: 53.0, 4: 59.0})]
    ctx = context(study, "tiny", runs, {}, [], item_scale=lambda metric: 100.0)
    finding = diagnostics().get("plateau").build({"type": "plateau", "arm": "mlp2"}).result(ctx).finding
    assert finding.startswith(
        "mlp2 plateaus 1.00 epoch(s) earlier than linear (mean plateau epoch 3.00 vs 4.00; earlier in 1 of 1 seed(s)), "
        "but at a lower 45 against 59: it levels off sooner without reaching linear's accuracy, which does not "
        "support \"mlp2 converges faster\"; still rising")


def plateau_finding(tmp_path, runs) -> str:
    study = load_study(write_project(tmp_path, study_with([{"type": "plateau", "arm": "mlp2"}])))
    ctx = context(study, "tiny", runs, {}, [], item_scale=lambda metric: 100.0)
    return diagnostics().get("plateau").build({"type": "plateau", "arm": "mlp2"}).result(ctx).finding


def test_a_seed_still_rising_leaves_its_order_open(tmp_path):
    # the shape of the tiny scienceqa_format study at six epochs: both arms at 6, 5, 6 / 6, 5, 5
    runs = [cell("mlp2", 1, {4: 48.7, 5: 55.0, 6: 59.3}), cell("linear", 1, {4: 63.3, 5: 67.3, 6: 69.7}),
            cell("mlp2", 2, {4: 51.3, 5: 56.3, 6: 57.3}), cell("linear", 2, {4: 64.0, 5: 69.3, 6: 69.7}),
            cell("mlp2", 3, {4: 52.7, 5: 57.0, 6: 60.7}), cell("linear", 3, {4: 61.7, 5: 67.7, 6: 69.7})]
    # seed 1: both still rising (open); seed 2: the same epoch; seed 3: mlp2 later, linear's 5 exact
    assert plateau_finding(tmp_path, runs).startswith(
        "mlp2 plateaus 0.33 epoch(s) later than linear (mean plateau epoch 5.67 vs 5.33; earlier in 0 of 3 seed(s), "
        "open in 1): does not support \"mlp2 converges faster\"; still rising")


def test_refutes_only_with_a_majority_no_rising_seed_can_change(tmp_path):
    later = [cell("mlp2", s, {1: 10.0, 2: 50.0, 3: 60.0, 4: 60.5}) for s in (1, 2)]
    exact = [cell("linear", s, {1: 10.0, 2: 60.0, 3: 60.5, 4: 61.0}) for s in (1, 2)]
    assert plateau_finding(tmp_path, later + exact).endswith(
        "(mean plateau epoch 3.00 vs 2.00; earlier in 0 of 2 seed(s)): refutes \"mlp2 converges faster\". "
        "Plateau: first epoch within 2 of the seed's best accuracy.")
    rising = [cell("linear", s, {1: 10.0, 2: 40.0, 3: 52.0, 4: 60.0}) for s in (1, 2)]  # plateau 4: a lower bound
    assert "earlier in 2 of 2 seed(s)): supports" in plateau_finding(tmp_path, later + rising)
    rising_too = [cell("mlp2", s, {1: 10.0, 2: 30.0, 3: 45.0, 4: 60.0}) for s in (1, 2)]
    assert ("earlier in 0 of 2 seed(s), open in 2): open, \"mlp2 converges faster\" turns on the 2 seed(s) still "
            "rising") in plateau_finding(tmp_path, rising_too + rising)


def test_plateau_says_when_the_cells_have_no_curves(tmp_path):
    study = load_study(write_project(tmp_path, study_with([{"type": "plateau"}])))
    ctx = context(study, "tiny", [], {}, [])
    finding = diagnostics().get("plateau").build({"type": "plateau"}).result(ctx).finding
    assert finding == "no per-epoch accuracy curves for 'linear' (the cells need eval.each_epoch: true)"


# --- option_naming: read from the cells' predictions -------------------------------------------


def judged(extracted, correct, choices, skill):
    return {"extracted": extracted, "correct": correct, "meta": {"num_choices": choices, "skill": skill}}


def test_option_naming_counts_answers_naming_no_option_and_the_named_accuracy(tmp_path):
    config = {"type": "option_naming", "by": "skill"}
    study = load_study(write_project(tmp_path, study_with([config])))
    mlp2 = [judged("A", True, 2, "maps"), judged("FAILED", False, 4, "maps"), judged("B", False, 4, "signs"),
            judged("C", True, 4, "signs")]
    linear = [judged("A", False, 2, "maps"), judged("B", True, 2, "maps")]
    runs = [CellRun("r1", "mlp2|seed=7", "mlp2", 7, {}, {}, items=mlp2[:2]),
            CellRun("r2", "mlp2|seed=8", "mlp2", 8, {}, {}, items=mlp2[2:]),
            CellRun("r3", "linear|seed=7", "linear", 7, {}, {}, items=linear)]
    result = diagnostics().get("option_naming").build(config).result(context(study, "tiny", runs, {}, []))
    # mlp2: 1 of 4 names no option; 2 of the 3 named are right; chance among named (1/2 + 1/4 + 1/4) / 3
    assert result.data["arms"]["mlp2"] == {"answers": 4, "no_option": 1, "no_option_share": 0.25,
                                           "no_option_in_prompt": 0, "no_option_not_in_prompt": 0,
                                           "right_among_named": 2 / 3, "chance_among_named": 1 / 3,
                                           "right_overall": 0.5}
    assert result.rows[0] == ["linear", "all", "2", "0 (0.0%)", "0 / 0", "50.0%", "50.0%", "50.0%"]
    assert [row[:2] for row in result.rows[2:]] == [["linear", "maps"], ["mlp2", "maps"], ["mlp2", "signs"]]
    assert result.rows[3][2:] == ["2", "1 (50.0%)", "0 / 0", "100.0%", "50.0%", "50.0%"]
    assert result.finding == (
        "linear: 0.0% of 2 answers name no option; the options named are right 50.0% of the time against 50.0% by "
        "chance (even the options it names are near chance: it has not learnt to pick); mlp2: 25.0% of 4 answers "
        "name no option (0 with a word found nowhere in the prompt, 0 with a word of the prompt that is no option); "
        "the options named are right 66.7% of the time against 33.3% by chance (it picks above "
        "chance when it names one: the answers naming none are what it lacks). mlp2 against linear: +25.0 points of "
        "answers naming no option, +16.7 points right among the named.")


def test_an_answer_naming_no_option_is_traced_to_the_prompt_or_to_nowhere_in_it(tmp_path):
    from ablate.study.diagnostics.option_naming import answer_source

    prompt = "Which word would you find on a page with the guide words?\nengine - kettle\nOptions: (A) teal (B) jacket"
    def failed(prediction):
        return {"extracted": "FAILED", "correct": False, "prompt": prompt, "prediction": prediction,
                "meta": {"num_choices": 2}}
    records = [failed("In alphabetical order, river comes after jacket. The answer is river."),  # recalled
               failed("The answer is kettle."),  # a guide word: in the prompt, not an option
               failed("The answer is Engine. Then more text."),  # case and trailing text do not matter
               failed("no sentence stating an answer"),
               {"extracted": "B", "correct": True, "prompt": prompt, "prediction": "The answer is jacket.",
                "meta": {"num_choices": 2}}]
    assert [answer_source(r) for r in records] == ["not in the prompt", "in the prompt", "in the prompt", None,
                                                   "in the prompt"]
    assert answer_source({"prompt": "Which word names a pan?", "prediction": "The answer is pa."}) == \
        "not in the prompt"  # whole words only
    study = load_study(write_project(tmp_path, study_with([{"type": "option_naming"}])))
    runs = [CellRun("r1", "mlp2|seed=7", "mlp2", 7, {}, {}, items=records)]
    result = diagnostics().get("option_naming").build({"type": "option_naming"}).result(
        context(study, "tiny", runs, {}, []))
    figures = result.data["arms"]["mlp2"]
    assert (figures["no_option"], figures["no_option_in_prompt"], figures["no_option_not_in_prompt"]) == (4, 2, 1)
    assert "mlp2: 80.0% of 5 answers name no option (1 with a word found nowhere in the prompt, 2 with a word of " \
           "the prompt that is no option)" in result.finding


def test_option_naming_says_when_cells_have_no_judged_predictions(tmp_path):
    study = load_study(write_project(tmp_path, study_with([{"type": "option_naming"}])))
    runs = [CellRun("r1", "mlp2|seed=7", "mlp2", 7, {}, {}, items=[{"prediction": "x"}])]
    finding = diagnostics().get("option_naming").build({"type": "option_naming"}).result(
        context(study, "tiny", runs, {}, [])).finding
    assert finding.startswith("linear: no judged predictions") and "mlp2: no judged predictions" in finding


# --- answer_pieces: accuracy by the answer's length in the cell LLM's tokens ---------------------


def test_answer_pieces_splits_accuracy_by_the_answers_length_in_the_cells_own_tokens(tmp_path):
    from ablate.study.cells import cell_recipe, expand_cells
    from ablate.zoo.tokenizer import build_tokenizer

    pieces = build_tokenizer()  # zoo:tiny-llama's tokenizer
    assert [len(pieces(w, add_special_tokens=False).input_ids) for w in ("teal", "oval", "pear", "rabbit")] == \
        [1, 2, 3, 5]
    study = load_study(write_project(tmp_path, study_with([{"type": "answer_pieces"}])))
    cells = expand_cells(study, "tiny", [7])
    recipes = {cell.id: cell_recipe(study, "tiny", cell) for cell in cells}

    def answer(text, correct):
        return {"answer": text, "correct": correct, "extracted": text, "meta": {"answer_text": text}}
    mlp2 = [answer("teal", True), answer("teal", True), answer("oval", True), answer("pear", False),
            answer("rabbit", False), answer("rabbit", True), answer("a red circle", False)]  # a phrase: left out
    linear = [answer("teal", True), answer("rabbit", True), {"answer": "x", "meta": {}}]  # unjudged: left out
    runs = [CellRun("r1", "mlp2|seed=7", "mlp2", 7, {}, {}, items=mlp2),
            CellRun("r2", "linear|seed=7", "linear", 7, {}, {}, items=linear)]
    result = diagnostics().get("answer_pieces").build({"type": "answer_pieces"}).result(
        context(study, "tiny", runs, recipes, []))
    assert result.data["arms"]["mlp2"] == {"1": {"answers": 2, "right": 1.0}, "2": {"answers": 1, "right": 1.0},
                                           "3": {"answers": 1, "right": 0.0}, "4": {"answers": 2, "right": 0.5}}
    assert [row[:2] for row in result.rows] == [["linear", "1"], ["linear", "4+"], ["mlp2", "1"], ["mlp2", "2"],
                                                ["mlp2", "3"], ["mlp2", "4+"]]  # the study's arm order
    assert result.finding == (
        "linear: one-token answers 100.0% right (n=1), longer ones 100.0% (n=1), +0.0 points; accuracy does not "
        "fall with the answer's length: spelling is not the reason; mlp2: one-token answers 100.0% right (n=2), "
        "longer ones 50.0% (n=4), +50.0 points; accuracy falls with the answer's length: spelling an option in "
        "pieces is part of what it misses.")


def test_answer_pieces_names_the_cells_it_leaves_out(tmp_path):
    study = load_study(write_project(tmp_path, study_with([{"type": "answer_pieces", "one_word": False}])))
    runs = [CellRun("r1", "mlp2|seed=7", "mlp2", 7, {}, {}, items=[{"answer": "a red circle", "correct": True}])]
    result = diagnostics().get("answer_pieces").build({"type": "answer_pieces", "one_word": False}).result(
        context(study, "tiny", runs, {}, []))  # no recipe for the cell
    assert result.rows == [] and result.finding == (
        "linear: no judged answers of one token to compare; mlp2: no judged answers of one token to compare. "
        "Left out: cell mlp2|seed=7 (the study file no longer plans it).")


# --- stage_length: extra runs, under the parent run, reused on a re-run ------------------------


STAGE_LENGTH = {"type": "stage_length", "epochs": [2, 3], "params": ["connector"], "question": "undertrained?"}


def test_stage_length_runs_each_arm_once_per_extra_length_and_reports_them(project):
    write_project(project, study_with([STAGE_LENGTH]))
    outcome = run()
    starts = [e["name"] for e in run_log(project) if e["event"] == "start"]
    assert len(starts) == 4 + 2 * 2  # the cells (2 arms x 2 seeds), then 2 arms x 2 extra lengths at seed 7
    assert sorted(starts[4:]) == ["demo-linear-s7-instruct2ep", "demo-linear-s7-instruct3ep",
                                  "demo-mlp2-s7-instruct2ep", "demo-mlp2-s7-instruct3ep"]
    saved = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    accuracy = {row["arm"]: row for row in saved["metrics"][0]["rows"]}
    assert {arm: row["seeds"] for arm, row in accuracy.items()} == {"linear": [7, 8], "mlp2": [7, 8]}  # cells only
    (result,) = saved["diagnostics"]
    points = result["data"]["arms"]["mlp2"]
    assert sorted(points) == ["1", "2", "3"]  # the cell's own length, then the extra runs
    assert [points[e]["steps"] for e in ("1", "2", "3")] == [10.0, 20.0, 30.0]
    assert points["1"]["params"] == {"connector": 3000.0}
    markdown = (outcome.prepared.folder / REPORT_MD).read_text()
    verdict, rest = markdown.split("## Diagnostics: what explains the verdict")
    assert "## accuracy (objective)" in verdict and "## color" in rest  # right under the objective's table
    assert "Tests: undertrained?" in rest and "| mlp2 | 3,000 | 3 | 30 |" in rest
    assert "**Finding:** accuracy of mlp2 minus linear:" in rest
    # every figure is the one its run logged (the cells' own length included)
    logged = {(r.data.tags["ablate.study.arm"], r.data.metrics["study/stage/instruct/steps"]): r.data.metrics
              for r in nested_runs(saved_parent(outcome.prepared.folder), status="FINISHED")
              if r.data.tags["ablate.study.seed"] == "7"}
    for arm, arm_points in result["data"]["arms"].items():
        for epochs, point in arm_points.items():
            metrics = logged[arm, 10.0 * int(epochs)]
            assert point["value"] == metrics["eval/accuracy"]
            assert point["final_loss"] == metrics["study/stage/instruct/final_loss"]
    # a re-run finds the extra runs in MLflow and runs nothing again
    run()
    assert len([e for e in run_log(project) if e["event"] == "start"]) == 8


def two_gpu_workers(monkeypatch, **kwargs):
    """`run_study` with two local workers on a machine that shows two GPUs (the fake run uses none)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    return run_study("demo", scale="tiny", run_fn="study_fakes:fake_run", workers=2, console=quiet_console(),
                     poll_s=0.2, **kwargs)


@pytest.mark.slow
def test_with_a_gpu_per_worker_the_diagnostic_runs_go_side_by_side_and_report_the_same(project, monkeypatch):
    write_project(project, study_with([STAGE_LENGTH]))
    monkeypatch.setenv("FAKE_RUN_SLEEP", "1.5")
    outcome = two_gpu_workers(monkeypatch)
    events = [e for e in run_log(project) if e["name"].endswith("ep")]
    assert sorted(e["name"] for e in events if e["event"] == "start") == [
        "demo-linear-s7-instruct2ep", "demo-linear-s7-instruct3ep", "demo-mlp2-s7-instruct2ep", "demo-mlp2-s7-instruct3ep"]
    pids = {e["pid"] for e in events}
    assert len(pids) == 2 and os.getpid() not in pids  # two slot processes, not the study's own
    assert sorted({e["pid"]: e["gpus"] for e in events}.values()) == ["0", "1"]  # each slot its own GPU
    assert [e["event"] for e in events[:2]] == ["start", "start"]  # the second started before the first ended
    logs = sorted((outcome.prepared.folder / "workers").glob("diagnostics-*.log"))
    assert [p.name for p in logs] == ["diagnostics-0.log", "diagnostics-1.log"]
    assert all("threads: 1" in p.read_text() for p in logs)  # each slot its share of the 2 threads
    (result,) = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())["diagnostics"]
    assert [result["data"]["arms"]["mlp2"][e]["steps"] for e in ("1", "2", "3")] == [10.0, 20.0, 30.0]
    assert result["data"]["arms"]["mlp2"]["2"]["value"] == _serial_stage_length_value(project, monkeypatch)


def _serial_stage_length_value(project, monkeypatch) -> float:
    """mlp2 at 2 epochs, seed 7, from the same study run again with one worker in a new folder."""
    import shutil

    shutil.rmtree(project / "runs")
    monkeypatch.setenv("FAKE_RUN_SLEEP", "0")
    outcome = run()
    (result,) = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())["diagnostics"]
    return result["data"]["arms"]["mlp2"]["2"]["value"]


def test_diagnostic_runs_go_side_by_side_only_where_each_local_worker_has_its_own_gpus(tmp_path):
    from ablate.study.launch import LaunchOptions
    from ablate.study.runner import _diagnostic_slots
    from ablate.study.worker import WorkerSpec

    spec = WorkerSpec("demo.yaml", "tiny", [7], str(tmp_path), None, "sqlite:///m.db", "r0", run_fn="m:f")
    gpus = [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    side = _diagnostic_slots(spec, gpus, LaunchOptions())
    assert [env["CUDA_VISIBLE_DEVICES"] for env in side.envs] == ["0", "1"] and side.run_fn == "m:f"
    assert side.log_dir == tmp_path / "workers"
    # on CPU (two workers would split the threads), with one worker, or with cells run as jobs: none
    assert _diagnostic_slots(spec, [{}, {}], LaunchOptions()) is None
    assert _diagnostic_slots(spec, gpus[:1], LaunchOptions()) is None
    assert _diagnostic_slots(spec, gpus, LaunchOptions(kind="torchrun")) is None


@pytest.mark.slow
def test_a_failed_side_by_side_run_lets_the_others_finish_and_only_it_runs_again(project, monkeypatch):
    write_project(project, study_with([STAGE_LENGTH]))
    knob = "FAKE_RUN_MISSING"
    monkeypatch.setenv(knob, "mlp2-s7-instruct2ep")
    # a user's error keeps its message (and so its exit 2), though its class does not unpickle
    with pytest.raises(AblateError, match="llm: cannot load checkpoint 'lmsys/vicuna-13b-v1.5' .synthetic, in demo-mlp2"):
        two_gpu_workers(monkeypatch)
    done = [e["name"] for e in run_log(project) if e["event"] == "done" and e["name"].endswith("ep")]
    assert sorted(done) == ["demo-linear-s7-instruct2ep", "demo-linear-s7-instruct3ep", "demo-mlp2-s7-instruct3ep"]
    monkeypatch.delenv(knob)
    two_gpu_workers(monkeypatch)
    starts = [e["name"] for e in run_log(project) if e["event"] == "start"]
    assert len(starts) == 4 + 4 + 1 and starts[-1] == "demo-mlp2-s7-instruct2ep"  # nothing else is redone


def test_a_failed_run_does_not_keep_the_other_diagnostics_from_recording(project, monkeypatch):
    probe = {"type": "layer_probe", "train_images": 40, "test_images": 20}
    write_project(project, study_with([STAGE_LENGTH, probe]))
    monkeypatch.setenv("FAKE_RUN_MISSING", "mlp2-s7-instruct2ep")
    with pytest.raises(AblateError, match="cannot load checkpoint"):
        run()
    from ablate.study.diagnostics.run import collect_diagnostic_runs

    recorded = [r.diagnostic for r in collect_diagnostic_runs(saved_parent(project / "runs" / "studies" / "demo-tiny"))]
    assert recorded.count("layer_probe") == 1  # the probe measured all the same
    assert recorded.count("stage_length") == 2  # linear's two runs, before the failed one (run here, in order)


def test_a_variant_runs_one_arm_once_with_its_change_and_reports_it_beside_the_cells(project):
    variant = {"type": "variant", "arm": "mlp2", "label": "depth 3", "set": {"model.connector.depth": 3}}
    write_project(project, study_with([variant]))
    outcome = run()
    starts = [e for e in run_log(project) if e["event"] == "start"]
    assert [e["name"] for e in starts[4:]] == ["demo-mlp2-s7-variant"]  # after the 4 cells, one run at seed 7
    saved = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    (result,) = saved["diagnostics"]
    logged = {(r.data.tags["ablate.study.arm"], r.data.tags.get("ablate.study.diagnostic")): r.data.metrics
              for r in nested_runs(saved_parent(outcome.prepared.folder), status="FINISHED")
              if r.data.tags["ablate.study.seed"] == "7"}
    assert result["data"]["variant"]["value"] == logged["mlp2", "variant"]["eval/accuracy"]
    assert result["data"]["arms"] == {arm: logged[arm, None]["eval/accuracy"] for arm in ("linear", "mlp2")}
    assert result["finding"].startswith(f"mlp2, depth 3: accuracy {logged['mlp2', 'variant']['eval/accuracy']:.4g} (")
    run()  # found in MLflow: nothing runs again
    assert len([e for e in run_log(project) if e["event"] == "start"]) == 5


def test_a_variant_changes_only_the_fields_it_sets(tmp_path):
    from ablate.study.runner import prepare_study

    recipe = prepare_study(write_project(tmp_path, study_with([])), "tiny", seeds=1).recipes["mlp2|seed=7"]
    config = {"type": "variant", "arm": "mlp2", "label": "depth 3", "set": {"model.connector.depth": 3}}
    changed = diagnostics().get("variant").build(config).changed(recipe)
    before, after = recipe.resolved(), changed.resolved()
    assert after["model"]["connector"]["depth"] == 3
    after["model"]["connector"]["depth"] = before["model"]["connector"]["depth"]
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}


def test_diagnostics_run_only_at_their_scales(project):
    write_project(project, study_with([{**STAGE_LENGTH, "scales": ["small"]}]))
    outcome = run()
    assert len([e for e in run_log(project) if e["event"] == "start"]) == 4
    assert "Diagnostics" not in (outcome.prepared.folder / REPORT_MD).read_text()


# --- layer_probe -------------------------------------------------------------------------------


def test_layer_probe_finding_compares_the_arms_layers(tmp_path):
    study_dict = study_with([{"type": "layer_probe"}])
    study_dict["axes"] = [{"name": "layer", "path": "model.encoder.feature_layer",
                           "arms": [{"label": "penultimate", "value": -2}, {"label": "last", "value": -1}]}]
    study_dict["baseline"], study_dict["paper"] = "penultimate", []
    study_dict["report"] = {}
    study = load_study(write_project(tmp_path, study_dict))
    from ablate.study.cells import expand_cells, validate_cells

    recipes = validate_cells(study, "tiny", expand_cells(study, "tiny", [7]))
    runs = [CellRun("a", "penultimate|seed=7", "penultimate", 7, {}, {"eval/accuracy": 0.70}),
            CellRun("b", "last|seed=7", "last", 7, {}, {"eval/accuracy": 0.75})]
    probe = DiagnosticRun("p", "layer_probe", "probe", "", 0, None, {
        "probe/-1/shape": 0.9, "probe/-1/color": 0.95, "probe/-2/shape": 0.8, "probe/-2/color": 0.99})
    result = diagnostics().get("layer_probe").build({"type": "layer_probe"}).result(
        context(study, "tiny", runs, recipes, [probe]))
    assert result.rows == [["-1", "last", "0.900", "0.950"], ["-2", "penultimate", "0.800", "0.990"]]
    assert result.finding == ("shape: last (layer -1, 0.900) > penultimate (layer -2, 0.800); color: penultimate "
                              "(layer -2, 0.990) > last (layer -1, 0.950); the study's better arm (last) is also the "
                              "one whose layer separates shape best (last).")
    tie = DiagnosticRun("p", "layer_probe", "probe", "", 0, None, {
        "probe/-1/shape": 0.836, "probe/-1/color": 0.988, "probe/-2/shape": 0.836, "probe/-2/color": 0.988})
    finding = diagnostics().get("layer_probe").build({"type": "layer_probe"}).result(
        context(study, "tiny", runs, recipes, [tie])).finding
    assert finding == ("shape: penultimate (layer -2, 0.836) = last (layer -1, 0.836); color: penultimate (layer -2, "
                       "0.988) = last (layer -1, 0.988); the layers of penultimate and last separate shape equally "
                       "well, so shape does not explain why last scored better.")


def test_layer_probe_measures_every_layer_of_a_zoo_tower():
    from ablate.registry import registries
    from ablate.study.diagnostics.layer_probe import probe_layers

    config = registries().encoder.get("hf_clip").make_config({"name_or_path": "zoo:tiny-clip", "feature_layer": -2})
    figures = probe_layers(config, None, train_images=40, test_images=20)
    assert sorted(figures) == [-4, -3, -2, -1]  # zoo:tiny-clip has 4 layers
    assert all(set(f) == {"shape", "color"} and 0.0 <= min(f.values()) <= max(f.values()) <= 1.0 for f in figures.values())
    assert probe_layers(config, None, train_images=40, test_images=20) == figures  # deterministic


def test_yaml_of_the_docs_example_validates(tmp_path):
    block = yaml.safe_load("""
- type: stage_length
  epochs: [2]
  params: [llm]
  question: is the larger LLM undertrained at equal steps?
""")
    study = load_study(write_project(tmp_path, study_with(block)))
    assert study.spec.diagnostics[0].params == ["llm"]
