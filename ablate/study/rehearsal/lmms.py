"""lmms-eval tasks in a rehearsal: stand-ins that take the real tasks' names.

The real tasks read their benchmarks from the Hugging Face Hub; a rehearsal must not. For each
task of `eval.tasks`, `stand_in_tasks` writes a local task of the same name that includes
lmms-eval's own task file (prompt, generation settings, scoring, aggregation: its metric names)
and reads the kit's documents (`ablate.zoo.kit.lmms_docs`) instead. The rehearsal puts their
folder first in eval.include_path, where ablate's harness takes a task before lmms-eval's own of
the same name. They are written under $ABLATE_HOME/rehearsal-lmms-tasks, beside the kit: their
`include` names the installed lmms-eval's files, which the kit's manifest does not cover.
"""

from __future__ import annotations

from pathlib import Path

from ablate.study.rehearsal.recipes import KitLookupError

# task -> lmms-eval's own task file, relative to its tasks folder
STAND_INS = {"mme": "mme/mme.yaml", "gqa": "gqa/gqa.yaml", "mmvet": "mmvet/mmvet.yaml"}
FOLDER = "rehearsal-lmms-tasks"


def stand_in_tasks(kit, tasks: list[str]) -> Path:
    """The folder of the stand-ins of `tasks` (written now); KitLookupError for a task without one."""
    from ablate.eval.lmms_tasks import write_local_task
    from ablate.zoo.kit import DATA
    from ablate.zoo.kit.lmms_docs import lmms_docs

    missing = [task for task in tasks if task not in STAND_INS]
    if missing:
        raise KitLookupError(f"the rehearsal kit has no stand-in for lmms-eval task {missing[0]!r}; it holds "
                             f"{', '.join(STAND_INS)}")
    folder = kit.root.parent / FOLDER
    for task in tasks:
        write_local_task(folder, task, STAND_INS[task], lmms_docs(kit.root / DATA, task))
    return folder
