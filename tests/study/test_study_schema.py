"""Study files: schema, cross-checks, cells and the recipes they produce."""

from pathlib import Path

import pytest
import yaml

from ablate.errors import AblateError
from ablate.study.cells import Cell, cell_recipe, expand_cells, missing_checkpoints, seeds_for, validate_cells
from ablate.study.schema import StudyError, load_study
from study_fakes import STUDY, write_project

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "studies").glob("*.yaml"))
EXPECTED = {"clip_layer", "scienceqa_format", "skip_pretraining", "llm_scale", "data_types", "connector"}


def test_the_six_studies_exist():
    assert {p.stem for p in STUDIES} >= EXPECTED


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("scale", ["paper", "tiny"])
def test_repository_study_validates(path, scale):
    study = load_study(path)
    assert study.base_path(scale).is_file(), f"base recipe {study.base_path(scale)} is missing"
    cells = expand_cells(study, scale, seeds_for(study, scale))
    recipes = validate_cells(study, scale, cells)
    assert len(recipes) == len(study.arm_names()) * len(seeds_for(study, scale))
    if scale == "tiny":
        assert missing_checkpoints(recipes.values()) == []  # tiny runs offline: zoo names only


def test_paper_values_match_the_papers():
    by_name = {p.stem: load_study(p) for p in STUDIES}
    values = {name: {k: v for ref in s.spec.paper for k, v in ref.values.items()} for name, s in by_name.items()}
    assert values["clip_layer"] == {"penultimate": 90.92, "last": 89.96}
    assert values["scienceqa_format"] == {"reasoning-first": 90.92, "answer-first": 89.77}
    assert values["skip_pretraining"] == {"with pretraining": 90.92, "without pretraining": 85.81}
    assert values["llm_scale"] == {"13B": 90.92, "7B": 89.84}
    assert values["data_types"] == {"full data": 85.1, "detail + complex": 81.9, "conv + 5% detail + 10% complex": 80.5,
                                    "conversation only": 73.8, "no instruction tuning": 21.5}
    connector = {ref.benchmark: ref.values for ref in by_name["connector"].spec.paper}
    assert connector == {"MME": {"linear": 1323.8, "mlp2": 1355.2}, "GQA": {"linear": 46.8, "mlp2": 47.3},
                         "MM-Vet": {"linear": 26.3, "mlp2": 27.8}}
    assert by_name["connector"].arm_names() == ["linear", "mlp2", "qformer"]
    assert by_name["scienceqa_format"].spec.report.epoch_curves


def write_study(tmp_path, data) -> Path:
    path = write_project(tmp_path, data)
    return path


def test_every_problem_is_reported_with_its_path_and_line(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(STUDY))
    bad["axes"][0]["arms"][0]["lable"] = "x"
    bad["scales"]["tiny"]["seed"] = 3
    bad["baseline"] = "lineer"
    bad["paper"][0]["values"]["mlp3"] = 1.0
    path = write_study(tmp_path, bad)
    with pytest.raises(StudyError) as info:
        load_study(path)
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {"axes.0.arms.0.lable", "scales.tiny.seed"}  # schema errors come first
    assert "unknown key 'lable'" in problems["axes.0.arms.0.lable"].message
    assert "Did you mean 'label'" in problems["axes.0.arms.0.lable"].message
    assert "Did you mean 'seeds'" in problems["scales.tiny.seed"].message
    assert problems["scales.tiny.seed"].location.startswith(f"{path}:")
    # once the schema is right, the cross-field checks report together
    del bad["axes"][0]["arms"][0]["lable"]
    del bad["scales"]["tiny"]["seed"]
    bad["axes"][0]["path"] = {"tiny": "model.connector"}
    path = write_study(tmp_path, bad)
    with pytest.raises(StudyError) as info:
        load_study(path)
    problems = {p.path: p.message for p in info.value.problems}
    assert "Did you mean 'linear'" in problems["baseline"]
    assert "unknown arm 'mlp3'" in problems["paper.0.values.mlp3"]
    assert "no path for scale paper" in problems["axes.0.path"]
    assert str(info.value).startswith(f"{path}: 3 problems in study")


def test_value_and_per_scale_are_exclusive(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(STUDY))
    bad["axes"][0]["arms"][0]["per_scale"] = {"tiny": {"type": "linear"}, "paper": {"type": "linear"}}
    with pytest.raises(StudyError, match="either `value`"):
        load_study(write_study(tmp_path, bad))


def test_cells_recipes_null_removes_a_stage_and_per_scale_values(project):
    data = yaml.safe_load(yaml.safe_dump(STUDY))
    data["axes"] = [
        {"name": "pretraining", "path": "stages.align",
         "arms": [{"label": "with"}, {"label": "without", "value": None, "scale_set": {"tiny": {"eval.limit": 5}}}]},
        {"name": "llm", "path": "model.llm.name_or_path",
         "arms": [{"label": "big", "per_scale": {"tiny": "zoo:tiny-llama-large", "paper": "x/13b"}},
                  {"label": "small", "per_scale": {"tiny": "zoo:tiny-llama", "paper": "x/7b"}}]},
    ]
    data["baseline"] = {"pretraining": "with", "llm": "big"}
    data["paper"] = [{"source": "s", "benchmark": "b", "values": {"with / big": 1.0, "without / small": 0.5}}]
    data["scales"]["tiny"]["overrides"] = {"eval.each_epoch": True, "tracking.experiment": "exp-x"}
    study = load_study(write_project(project, data, name="two_axes"))
    seeds = seeds_for(study, "tiny")
    assert seeds == [7, 8]  # a count starts at the base recipe's seed
    assert seeds_for(study, "tiny", 3) == [7, 8, 9]
    cells = expand_cells(study, "tiny", seeds)
    assert [c.id for c in cells][:3] == ["with / big|seed=7", "with / big|seed=8", "with / small|seed=7"]
    assert len(cells) == 8 and study.baseline_arm() == "with / big"
    recipes = validate_cells(study, "tiny", cells)
    kept, removed = recipes["with / big|seed=7"], recipes["without / small|seed=8"]
    assert [s.name for s in kept.stages] == ["align", "instruct"]
    assert [s.name for s in removed.stages] == ["instruct"]
    assert removed.model.llm.name_or_path == "zoo:tiny-llama" and kept.model.llm.name_or_path == "zoo:tiny-llama-large"
    assert removed.eval.limit == 5 and kept.eval.limit is None
    assert removed.seed == 8 and removed.eval.each_epoch
    assert removed.tracking.experiment == "exp-x" and removed.name == "two_axes-without-small-s8"
    assert Cell((("pretraining", "without"), ("llm", "small")), 8).params == {"pretraining": "without", "llm": "small", "seed": 8}


def test_bad_arm_path_names_the_arm_and_line(project):
    data = yaml.safe_load(yaml.safe_dump(STUDY))
    data["axes"][0]["path"] = "stages.pretrain.lr"
    study = load_study(write_project(project, data))
    with pytest.raises(StudyError) as info:
        cell_recipe(study, "tiny", expand_cells(study, "tiny", [1])[0])
    problem = info.value.problems[0]
    assert "no list item named 'pretrain'" in problem.message and "arm 'linear'" in problem.message
    assert problem.location.startswith(str(study.path))


def test_invalid_cell_recipe_is_reported_per_arm(project):
    data = yaml.safe_load(yaml.safe_dump(STUDY))
    data["axes"][0]["arms"][1]["value"] = {"type": "mpl"}
    study = load_study(write_project(project, data))
    with pytest.raises(StudyError) as info:
        validate_cells(study, "tiny", expand_cells(study, "tiny", [1, 2]))
    [problem] = info.value.problems
    assert problem.path == "[tiny] arm 'mlp2': model.connector.type" and "Did you mean 'mlp'" in problem.message


def test_missing_checkpoints_name_each_and_suggest_tiny(project):
    from ablate.study.runner import prepare_study

    with pytest.raises(AblateError) as info:
        prepare_study("demo", "paper")
    text = str(info.value)
    assert "'lmsys/vicuna-13b-v1.3'" in text and "'openai/clip-vit-large-patch14'" in text
    assert "ablate study demo --scale tiny" in text
    local = project / "ckpt"
    local.mkdir()
    recipe = cell_recipe(load_study(project / "studies" / "demo.yaml"), "tiny", Cell((("connector", "linear"),), 1))
    assert missing_checkpoints([recipe]) == []
    moved = recipe.model_copy(update={"model": recipe.model.model_copy(update={
        "llm": recipe.model.llm.model_copy(update={"name_or_path": str(local)}),
        "encoder": recipe.model.encoder.model_copy(update={"name_or_path": "zoo:no-such-model"})})})
    assert [(c, n) for c, n, _ in missing_checkpoints([moved])] == [("encoder", "zoo:no-such-model")]


def test_unknown_scale_and_study_name(project):
    from ablate.study.discovery import find_study

    study = load_study(find_study("demo"))
    with pytest.raises(AblateError, match="no 'medium' scale"):
        study.section("medium")
    with pytest.raises(AblateError, match="Did you mean 'demo'"):
        find_study("demoo")


def test_a_paper_value_without_a_benchmark_is_an_error_with_its_line(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(STUDY))
    del bad["paper"][1]["benchmark"]
    bad["paper"][0]["benchmark"] = " (%)"
    path = write_study(tmp_path, bad)
    with pytest.raises(StudyError) as info:
        load_study(path)
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {"paper.0.benchmark", "paper.1.benchmark"}
    assert "missing" in problems["paper.1.benchmark"].message
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text == "- measure: accuracy")
    assert problems["paper.1.benchmark"].location == f"{path}:{line}"  # the paper value that lacks it
    assert problems["paper.0.benchmark"].location.startswith(f"{path}:")


def test_our_benchmark_comes_from_the_eval_data_or_the_study_file():
    from ablate.study.benchmarks import our_benchmark, same_benchmark

    def ours(name, scale):
        study = load_study(REPO / "studies" / f"{name}.yaml")
        section = study.section(scale)
        recipes = validate_cells(study, scale, expand_cells(study, scale, seeds_for(study, scale)))
        return {spec.name: our_benchmark(spec, section, recipes.values()) for spec in section.metric_specs()}

    assert ours("connector", "tiny") == {"accuracy": "easy_vqa"}
    assert ours("connector", "paper") == {"mme": "MME", "gqa": "GQA", "mmvet": "MM-Vet"}  # lmms_eval/<task>/... keys
    assert ours("data_types", "tiny")["detail"] == "easy_vqa"  # the mixture's sources
    assert ours("scienceqa_format", "tiny") == {"accuracy": "scienceqa (embedded)"}  # generated, not ScienceQA
    assert ours("scienceqa_format", "paper") == {"accuracy": "scienceqa"}  # the real one, under data/ScienceQA
    assert same_benchmark("scienceqa", "ScienceQA") and same_benchmark("mm_vet", "MM-Vet")
    assert not same_benchmark("easy_vqa", "GQA") and not same_benchmark("", "")
    assert not same_benchmark("scienceqa (embedded)", "ScienceQA")


def test_the_tiny_stand_ins_say_what_they_were_trained_on():
    from ablate.study.stand_ins import describe, stand_ins

    study = load_study(REPO / "studies" / "llm_scale.yaml")
    recipes = validate_cells(study, "tiny", expand_cells(study, "tiny", seeds_for(study, "tiny")))
    found = {s.checkpoint: s for s in stand_ins(recipes.values())}
    assert set(found) == {"zoo:tiny-clip-easyvqa", "zoo:tiny-llama-large-easyvqa", "zoo:tiny-llama-easyvqa"}
    llama = found["zoo:tiny-llama-easyvqa"]
    assert llama.pretrained and llama.used_at == ["model.llm.name_or_path"]
    assert describe(llama).startswith("`zoo:tiny-llama-easyvqa` (model.llm.name_or_path): tiny-llama, language-pretrained "
                                      "on text about easy-VQA train images")
