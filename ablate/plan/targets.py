"""What `ablate plan TARGET` plans: a recipe file, or a study (a study file, or NAME in studies/)."""

from __future__ import annotations

from pathlib import Path

from ablate.errors import AblateError
from ablate.plan.estimate import Planner, RecipePlan, Settings
from ablate.plan.gpus import check_gpus, gpu
from ablate.plan.mfu import check_mfu, recorded_steps
from ablate.plan.study import StudyPlan, plan_study


def settings_for(gpu_key: str, gpus: int, mfu: float | None) -> Settings:
    """Checked settings: AblateError for an unknown GPU, a GPU count below 1, an MFU outside (0, 1]."""
    return Settings(gpu(gpu_key), check_gpus(gpus), None if mfu is None else check_mfu(mfu), recorded_steps())


def plan_target(target: str, settings: Settings, *, overrides: list[str] = (), scale: str = "paper",
                seeds: int | None = None) -> RecipePlan | StudyPlan:
    from ablate.recipe import load_recipe
    from ablate.study.schema import load_study

    planner = Planner(settings)
    path = Path(target).expanduser()
    if path.is_file() and not _is_study_file(path):
        return planner.plan(load_recipe(path, list(overrides)), path.resolve().parent)
    study_path = path if path.is_file() else _study_named(target)
    if overrides:
        raise AblateError(f"-s overrides recipe fields; {target} is a study, whose cells take their values from "
                          "the study file (plan a cell's recipe with -s instead)")
    return plan_study(load_study(study_path), scale, seeds, planner)


def _is_study_file(path: Path) -> bool:
    """A study file has `scales` and `axes`; anything else is read as a recipe (and reported as one)."""
    from ablate.recipe.yaml_source import load_yaml_file  # the guarded reader (no alias bombs)

    try:
        data = load_yaml_file(path).data
    except AblateError:  # unreadable: loading it as a recipe reports why
        return False
    return isinstance(data, dict) and "scales" in data and "axes" in data


def _study_named(target: str) -> Path:
    from ablate.study.discovery import available, find_study

    if Path(target).suffix in {".yaml", ".yml"} or "/" in target:
        if Path(target).expanduser().is_dir():  # there, but not "a file that does not exist"
            raise AblateError(f"{target} is a folder, not a recipe or study YAML file")
        known = ", ".join(sorted(available())) or "none"
        raise AblateError(f"no recipe or study file {target!r}: it does not exist (studies by name: {known})")
    return find_study(target)
