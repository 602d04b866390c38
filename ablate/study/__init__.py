"""Studies: Optuna-driven ablations that reproduce the LLaVA papers' tables.

A study file (`studies/<name>.yaml`, schema in `schema.py`) names a base recipe per scale
(`paper`, `tiny`), the axes to vary with labelled arms, seeds, the objective, a baseline arm
and the paper's numbers. `cells.py` turns it into one recipe per (arm x seed) cell;
`queue.py`/`worker.py` enqueue every cell in an Optuna study and drain the queue with
ask/tell; `runner.py` ties it together with MLflow (`parent.py`); `report.py` recomputes the
results from the MLflow runs and compares them with the paper.

Nothing here imports torch; Optuna, MLflow and matplotlib are imported where they are used.
"""

from ablate.study.schema import SCALES, StudyError, StudyFile, load_study  # noqa: F401
