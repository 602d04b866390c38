"""`ablate study NAME --check` and the check every study makes before its first cell: each cell's
model on the meta device, its trainable sets, its named files; every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from ablate.study.preflight import StudyCheckError
from ablate.study.runner import run_study
from paper_machine import CLIP_WIDTH, VICUNA_13B_WIDTH, VICUNA_7B_WIDTH, paper_hub_cache, place_named_files
from paper_machine import write_llava_projector
from study_fakes import fake_run, quiet_console

REPO = Path(__file__).resolve().parents[2]
REAL_STUDIES = sorted(p.stem for p in (REPO / "studies").glob("*.yaml"))


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    return paper_hub_cache(tmp_path_factory.mktemp("paper-checkpoints"))


@pytest.fixture
def paper_machine(tmp_path, monkeypatch, hub_cache):
    """A working directory on a machine whose Hugging Face cache holds the paper checkpoints."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", REAL_STUDIES)
def test_every_real_study_passes_the_check_at_paper_scale(name, paper_machine, capsys):
    study = REPO / "studies" / f"{name}.yaml"
    assert place_named_files(study)  # every paper recipe names data files
    assert main(["study", str(study), "--check"]) == 0
    out = capsys.readouterr().out
    arms = yaml.safe_load(study.read_text())["axes"][0]["arms"]
    assert out.count("  ok   ") == len(arms)  # one line per cell (one seed at paper scale), each ok
    assert "-> linear ->" in out or "-> mlp ->" in out


def test_each_llm_size_aligns_a_projector_of_its_own_width(paper_machine, capsys):
    study = REPO / "studies" / "llm_scale.yaml"
    place_named_files(study)
    assert main(["study", str(study), "--check"]) == 0
    out = capsys.readouterr().out
    assert f"{CLIP_WIDTH} x 576 tokens -> linear -> {VICUNA_13B_WIDTH} x 576 tokens" in out
    assert f"{CLIP_WIDTH} x 576 tokens -> linear -> {VICUNA_7B_WIDTH} x 576 tokens" in out
    assert "pretrain: connector 2.1K; finetune: connector 2.1K + llm" in out  # 32 x 64 + 64 for 13B


# --- a broken study: the old llm_scale, a 13B projector for a 7B LLM, built small ---------------

OLD_BASE = {
    "name": "old_sqa",
    "seed": 42,
    "model": {
        "encoder": {"type": "hf_clip", "name_or_path": "openai/clip-vit-large-patch14", "feature_layer": -2},
        "connector": {"type": "linear"},
        "llm": {"type": "hf_causal_lm", "name_or_path": "lmsys/vicuna-13b-v1.3"},
        "init_connector": "checkpoints/llava-pretrain-vicuna-13b-v1.3/mm_projector.bin",
    },
    "stages": [{
        "name": "finetune",
        "data": {"type": "single", "source": {"type": "llava_json", "path": "data/sqa_train.json"}},
        "template": "vicuna_v1",
        "trainable": {"encoder": "frozen", "connector": "full", "llm": "full"},
        "lr": 2.0e-5,
    }],
    "eval": {"data": {"type": "easy_vqa", "split": "test", "style": "qa"}},
}
OLD_STUDY = {
    "description": "LLM size, as llm_scale was: both arms start from the 13B projector.",
    "scales": {"paper": {"base": "../recipes/old_sqa.yaml"}},
    "axes": [{"name": "llm", "path": "model.llm.name_or_path", "arms": [
        {"label": "13B", "value": "lmsys/vicuna-13b-v1.3"},
        {"label": "7B", "value": "lmsys/vicuna-7b-v1.3",
         "set": {"stages.finetune.trainable.llm": {"lora": {"target_modules": ["q_projj"]}}}},
    ]}],
    "baseline": "13B",
}


@pytest.fixture
def old_llm_scale(paper_machine):
    (paper_machine / "recipes").mkdir()
    (paper_machine / "studies").mkdir()
    (paper_machine / "recipes" / "old_sqa.yaml").write_text(yaml.safe_dump(OLD_BASE, sort_keys=False))
    (paper_machine / "studies" / "old_llm_scale.yaml").write_text(yaml.safe_dump(OLD_STUDY, sort_keys=False))
    write_llava_projector(paper_machine / OLD_BASE["model"]["init_connector"], CLIP_WIDTH, VICUNA_13B_WIDTH)
    return paper_machine / "studies" / "old_llm_scale.yaml"


def test_the_old_llm_scale_is_refused_with_every_problem_of_every_cell(old_llm_scale, capsys):
    assert main(["study", str(old_llm_scale), "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "4 problem(s) in 2 of 2 cells" in err
    head, seven = err.split("7B · seed 42:")
    assert head.count("stages.finetune.data.source.path") == 1  # the 13B cell: the data file alone
    assert "'data/sqa_train.json' does not exist" in head and "init_connector" not in head.split("13B · seed 42:")[1]
    assert (f"weight: file has shape [{VICUNA_13B_WIDTH}, {CLIP_WIDTH}], connector expects "
            f"[{VICUNA_7B_WIDTH}, {CLIP_WIDTH}]") in seven
    assert f"bias: file has shape [{VICUNA_13B_WIDTH}], connector expects [{VICUNA_7B_WIDTH}]" in seven
    assert "stages.finetune.trainable" in seven and "q_projj" in seven
    assert "'data/sqa_train.json' does not exist" in seven


def test_a_study_checks_every_cell_before_it_creates_anything(old_llm_scale):
    with pytest.raises(StudyCheckError) as caught:
        run_study(old_llm_scale, scale="paper", run_fn=fake_run, console=quiet_console())
    assert caught.value.check.problems == 4
    assert not (old_llm_scale.parent.parent / "runs").exists()


def test_a_projector_that_fits_passes(old_llm_scale, capsys):
    """The same study with the 7B arm on a released 7B projector and a data file in place."""
    study = yaml.safe_load(old_llm_scale.read_text())
    seven = study["axes"][0]["arms"][1]
    seven["set"] = {"model.init_connector": "checkpoints/llava-pretrain-vicuna-7b-v1.3/mm_projector.bin"}
    old_llm_scale.write_text(yaml.safe_dump(study, sort_keys=False))
    write_llava_projector(Path(seven["set"]["model.init_connector"]), CLIP_WIDTH, VICUNA_7B_WIDTH)
    Path("data").mkdir()
    Path("data/sqa_train.json").write_text("[]")
    assert main(["study", str(old_llm_scale), "--check"]) == 0
    assert capsys.readouterr().out.count("  ok   ") == 2


# --- the demo project (zoo checkpoints) ------------------------------------------------------


def test_tiny_scale_check_lists_each_cell(project, capsys):
    assert main(["study", "demo", "--scale", "tiny", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok   ") == 4  # 2 arms x 2 seeds
    assert "-> linear -> 256 x 64 tokens" in out and "-> mlp -> 256 x 64 tokens" in out


def test_trainable_sets_that_train_nothing_are_named(project, capsys):
    study = yaml.safe_load((project / "studies" / "demo.yaml").read_text())
    study["axes"][0]["arms"][0]["set"] = {"stages.align.trainable.connector": "frozen"}
    study["axes"][0]["arms"][1]["value"] = {"type": "identity"}
    (project / "studies" / "demo.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    assert main(["study", "demo", "--scale", "tiny", "--check", "--seeds", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "stages.align.trainable" in err and "trains nothing: every component is frozen" in err
    assert "needs the encoder width to equal the LLM width" in err  # identity: 128 -> 256


def test_checkpoints_not_on_this_machine_are_named_for_each_cell(project, capsys):
    assert main(["study", "demo", "--check"]) == 2  # paper scale: Hub ids that are not in the cache
    err = " ".join(capsys.readouterr().err.split())
    assert "4 problem(s) in 2 of 2 cells" in err
    for arm in ("linear", "mlp2"):
        cell = err.split(f"{arm} · seed 7:")[1].split(" · seed ")[0]
        assert "model.encoder.name_or_path" in cell and "'openai/clip-vit-large-patch14'" in cell
        assert "model.llm.name_or_path" in cell and "'lmsys/vicuna-13b-v1.3'" in cell
        assert "its config.json is not in the local Hugging Face cache" in cell


# --- a declared diagnostic's extra runs are checked with the cells ----------------------------


def _with_variant(project, edits: dict) -> None:
    study = yaml.safe_load((project / "studies" / "demo.yaml").read_text())
    study["diagnostics"] = [{"type": "variant", "arm": "mlp2", "label": "edited", "set": edits}]
    (project / "studies" / "demo.yaml").write_text(yaml.safe_dump(study, sort_keys=False))


def test_a_variants_extra_run_is_checked_beside_the_cells(project, capsys):
    _with_variant(project, {"model.connector.depth": 3})
    assert main(["study", "demo", "--scale", "tiny", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok   ") == 5  # 4 cells and the variant's one run, at the first seed
    assert "ok   diagnostic variant · mlp2 · seed 7 · variant=edited" in out


@pytest.mark.parametrize("edits, found", [
    ({"model.connectr.depth": 3}, "model.connectr"),  # a path the recipe does not have
    ({"model.connector.depth": "deep"}, "model.connector.depth"),  # a value of the wrong type
    ({"eval.data": 5}, "eval.data"),
])
def test_a_variant_edit_that_would_not_run_fails_the_check_and_the_study_before_any_cell(project, capsys, edits,
                                                                                           found):
    _with_variant(project, edits)
    assert main(["study", "demo", "--scale", "tiny", "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "1 problem(s) in 0 of 4 cells and 1 diagnostic run(s)" in err
    assert "diagnostic variant" in err and "diagnostics.0" in err and found in err
    study = (project / "studies" / "demo.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(study, 1) if text.strip() == "set:")
    assert f"demo.yaml:{line})" in err.split("diagnostics.0")[1]  # the line of the edits in the study file
    with pytest.raises(StudyCheckError):
        run_study(project / "studies" / "demo.yaml", scale="tiny", run_fn=fake_run, console=quiet_console())
    assert not (project / "runs").exists() and not (project / "runs.log").exists()


def test_a_variant_naming_a_checkpoint_that_is_not_there_is_named(project, capsys):
    _with_variant(project, {"model.llm.name_or_path": "zoo:tiny-llama-nonexistent"})
    assert main(["study", "demo", "--scale", "tiny", "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "diagnostics.0 -> model.llm.name_or_path" in err and "tiny-llama-nonexistent" in err


def test_all_checks_every_study_and_names_each_that_has_problems(project, capsys):
    """`ablate study all --check`: a study with problems does not stop the others being checked;
    their problems are one error (exit 2), and the studies without problems print their cells."""
    broken = yaml.safe_load((project / "studies" / "demo.yaml").read_text())
    broken["axes"][0]["arms"][1]["value"] = {"type": "mlp", "depth": 0}
    (project / "studies" / "broken.yaml").write_text(yaml.safe_dump(broken))
    code = main(["study", "all", "--scale", "tiny", "--check"])
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert code == 2 and f"1 of {len(REAL_STUDIES) + 2} studies have problems (broken)" in err
    assert "depth" in err and "Traceback" not in captured.err
    assert "demo (tiny scale): 4 cells checked" in captured.out and "broken (tiny scale)" not in captured.out
