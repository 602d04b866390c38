"""A paper-scale cell's recipe as the rehearsal runs it: the same recipe on the kit, a few steps.

What changes, and nothing else:
- every checkpoint (`*name_or_path` in the model section) and `model.init_connector` -> the
  kit's copy of it;
- every file or folder a data block names (its fields by source type, FILE_FIELDS, and any
  field called path, root or *_path/_root/_file/_dir) -> the kit's copy;
- each stage's `max_steps` -> MAX_STEPS, and `eval.limit` -> at most EVAL_LIMIT;
- with `eval.harness: lmms_eval`: the kit's stand-ins of its tasks, first in `eval.include_path`
  (`rehearsal.lmms`), and `eval.judge.endpoint` -> the stand-in judge (`rehearsal.judge`, whose
  URL the session puts in ABLATE_JUDGE_BASE_URL before any recipe is made);
- `output_dir` -> `<output_dir>/rehearsal/<study>` and the MLflow experiment -> `<experiment>-rehearsal`
  (where results are filed, not what is computed), so rehearsals never mix with real results.

A recipe value is matched to the kit entry whose path ends with the most of its trailing parts
(`data/ScienceQA` -> `<kit>/data/ScienceQA`, `lmsys/vicuna-7b-v1.3` -> `<kit>/hub/lmsys/...`,
`checkpoints/llava-pretrain-vicuna-13b-v1.3/mm_projector.bin` -> the kit's projector release).
Values the kit cannot stand in for are reported together, each with its recipe path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ablate.data.mixtures.llava import ARMS as INSTRUCT_ARMS, INSTRUCT_FILES
from ablate.errors import AblateError, Problem, RecipeError

MAX_STEPS = 2
EVAL_LIMIT = 2
SUFFIX = "-rehearsal"
# data source / mixture type -> the fields that name its files and folders
FILE_FIELDS: dict[str, tuple[str, ...]] = {
    "llava_json": ("path", "image_root"),
    "llava_bench": ("path", "rules", "image_root"),
    "scienceqa": ("root",),
    "llava_v1_5_mix665k": ("path", "image_root"),
    **{arm: (*INSTRUCT_FILES, "image_root") for arm in INSTRUCT_ARMS},
}
FILE_FIELD_NAME = re.compile(r"^(path|root|.+_(path|root|file|dir))$")


class KitLookupError(AblateError):
    """The kit has no entry, or several, for a recipe value."""


def stand_in(kit, value: str) -> Path:
    """The kit entry for `value`: the one whose path ends with the most of value's trailing parts."""
    parts = [p for p in PurePath(value).parts if p not in ("/", ".", "..", "~")]
    entries = kit.entries()
    for length in range(len(parts), 0, -1):
        found = [e for e in entries if e.parts[-length:] == tuple(parts[-length:])]
        if len(found) == 1:
            return kit.root / found[0]
        if found:
            raise KitLookupError(f"{value!r} could be any of the kit's {', '.join(map(str, found))}")
    raise KitLookupError(f"the rehearsal kit ({kit.root}) has no stand-in for {value!r}; it holds the hub repos "
                         f"{', '.join(sorted(str(e) for e in entries if len(e.parts) == 3 and e.parts[0] == 'hub'))} "
                         f"and the data sets under data/")


@dataclass
class Rehearsal:
    """Turns a study's paper-scale cell recipes into rehearsal recipes on `kit` (a zoo Kit)."""

    kit: Any
    study: str
    changes: dict[tuple[str, str], str] = field(default_factory=dict)  # (recipe path, paper value) -> rehearsal's

    def label(self, scale: str) -> str:
        return scale + SUFFIX

    def experiment(self, name: str) -> str:
        return name + SUFFIX

    def recipe(self, recipe):
        """The rehearsal's recipe for `recipe` (validated); RecipeError naming every value the
        kit cannot stand in for."""
        from ablate.recipe.loading import recipe_from_dict

        data, problems = recipe.resolved(), []
        swap = _Swapper(self, problems)
        swap.model(data["model"])
        for stage in data["stages"]:
            swap.data_block(stage["data"], f"stages.{stage['name']}.data")
            self._set(stage, "max_steps", MAX_STEPS, "stages.*.max_steps")
        if data.get("eval"):
            if data["eval"]["harness"] == "lmms_eval":
                self._lmms_eval(data["eval"], problems)
            swap.data_block(data["eval"]["data"], "eval.data")
            limit = data["eval"]["limit"]
            self._set(data["eval"], "limit", min(limit or EVAL_LIMIT, EVAL_LIMIT), "eval.limit")
        self._set(data, "output_dir", str(Path(recipe.output_dir) / "rehearsal" / self.study), "output_dir")
        tracking = data["tracking"]
        self._set(tracking, "experiment", self.experiment(tracking["experiment"]), "tracking.experiment")
        if problems:
            raise RecipeError(f"rehearsal of {recipe.name}", problems)
        return recipe_from_dict(data, source=f"rehearsal of {recipe.name}")

    def _lmms_eval(self, ev: dict[str, Any], problems: list[Problem]) -> None:
        """The kit's stand-ins of the lmms-eval tasks, and the stand-in judge for a pinned one."""
        import os

        from ablate.study.rehearsal.judge import ENV
        from ablate.study.rehearsal.lmms import stand_in_tasks

        try:
            folder = stand_in_tasks(self.kit, ev["tasks"])
        except (KitLookupError, AblateError) as exc:
            problems.append(Problem("eval.tasks", str(exc)))
        else:
            self._set(ev, "include_path", [str(folder), *(ev["include_path"] or [])], "eval.include_path")
        if ev["judge"] is not None:
            if url := os.environ.get(ENV):
                self._set(ev["judge"], "endpoint", url, "eval.judge.endpoint")
            else:
                problems.append(Problem("eval.judge.endpoint", f"no stand-in judge is running ({ENV} is unset); "
                                        "`ablate study NAME --scale paper --rehearse` starts one"))

    def _set(self, block: dict, key: str, value: Any, shown_as: str) -> None:
        if block.get(key) != value:
            self.changes[(shown_as, str(block.get(key)))] = str(value)
        block[key] = value


@dataclass
class _Swapper:
    """Replaces the checkpoint and data paths of one recipe dict in place."""

    rehearsal: Rehearsal
    problems: list[Problem]

    def value(self, where: str, value: str) -> str:
        try:
            new = str(stand_in(self.rehearsal.kit, value))
        except KitLookupError as exc:
            self.problems.append(Problem(where, str(exc)))
            return value
        self.rehearsal.changes[(where, value)] = new
        return new

    def model(self, model: dict[str, Any], where: str = "model") -> None:
        for key, value in model.items():
            path = f"{where}.{key}"
            if isinstance(value, dict):
                self.model(value, path)
            elif isinstance(value, str) and (key.endswith("name_or_path") or key == "init_connector"):
                model[key] = self.value(path, value)

    def data_block(self, node: Any, where: str) -> None:
        """Every component block under `node` (sources of mixtures included)."""
        if isinstance(node, list):
            for index, item in enumerate(node):
                self.data_block(item, f"{where}.{index}")
            return
        if not isinstance(node, dict):
            return
        fields = FILE_FIELDS.get(node.get("type"), ()) if isinstance(node.get("type"), str) else ()
        for key, value in node.items():
            if isinstance(value, str) and key != "type" and (key in fields or FILE_FIELD_NAME.match(key)):
                node[key] = self.value(f"{where}.{key}", value)
            else:
                self.data_block(value, f"{where}.{key}")
