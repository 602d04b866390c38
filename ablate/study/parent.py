"""The study's MLflow parent run: created once, reopened on resume, its id kept in the study folder.

Each cell's `ablate run` is a nested run of it (`mlflow.parentRunId`), tagged with the study,
scale, arm labels, seed, Optuna trial and recipe hash (`cell_tags`). Report files are logged
as artifacts of the parent run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ablate.paths import write_text_whole

PARENT_FILE = "mlflow.json"
TAG = "ablate.study"


@dataclass
class ParentRun:
    run_id: str
    tracking_uri: str
    experiment_id: str

    def client(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)


def cell_tags(study_name: str, scale: str, cell, trial_number: int | None, recipe_hash: str | None) -> dict[str, str]:
    tags = {
        TAG: study_name,
        f"{TAG}.scale": scale,
        f"{TAG}.cell": cell.id,
        f"{TAG}.arm": cell.arm,
        f"{TAG}.seed": str(cell.seed),
        **{f"{TAG}.axis.{axis}": label for axis, label in cell.labels},
    }
    if trial_number is not None:
        tags[f"{TAG}.trial"] = str(trial_number)
    if recipe_hash:
        tags["ablate.recipe_hash"] = recipe_hash
    return tags


def saved_parent(folder: Path) -> ParentRun | None:
    """The parent run kept in `folder`, or None when it has none. A file that is there but not
    what ablate wrote is named, not taken for none: a new parent run would leave the finished
    cells' runs, nested under the old one, out of every report."""
    from ablate.run.stage_store import StoredStateError

    path = folder / PARENT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        parent = ParentRun(**data)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise StoredStateError(f"study parent-run file {path} cannot be read ({type(err).__name__}: {err}); "
                               f"restore it, or move the study folder {folder} aside to start the study over") from None
    if not all(isinstance(v, str) and v for v in (parent.run_id, parent.tracking_uri, parent.experiment_id)):
        raise StoredStateError(f"study parent-run file {path} does not name a run; restore it, or move the study "
                               f"folder {folder} aside to start the study over")
    return parent


def open_parent(folder: Path, tracking_uri: str, experiment: str, study, scale: str) -> ParentRun:
    """Reopen the parent run saved in `folder` (same tracking URI), or create it. A folder whose
    parent run is in another tracking store is refused: its finished cells are recorded there,
    and a new parent here would count them done with no runs to report."""
    from ablate.errors import AblateError
    from ablate.tracking import Tracker

    tracker = Tracker(tracking_uri, experiment)
    client = tracker._client
    saved = saved_parent(folder)
    if saved is not None and saved.tracking_uri != tracker.uri:
        raise AblateError(
            f"study folder {folder} belongs to the MLflow store {saved.tracking_uri} (parent run {saved.run_id}), "
            f"where its finished cells are recorded, but this run tracks to {tracker.uri}. Run again with "
            f"--tracking-uri {saved.tracking_uri}, or move the folder aside to start the study over in {tracker.uri}."
        )
    if saved is not None and saved.tracking_uri == tracker.uri:
        try:
            run = client.get_run(saved.run_id)
        except Exception:  # noqa: BLE001 - deleted or from another store
            run = None
        if run is not None and run.info.lifecycle_stage == "active":
            client.update_run(saved.run_id, status="RUNNING")
            return saved
    run = client.create_run(
        tracker.experiment_id,
        run_name=f"study {study.name} [{scale}]",
        tags={
            TAG: study.name, f"{TAG}.scale": scale, f"{TAG}.role": "parent",
            "mlflow.note.content": study.spec.description,
        },
    )
    parent = ParentRun(run.info.run_id, tracker.uri, tracker.experiment_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_whole(folder / PARENT_FILE, json.dumps(parent.__dict__, indent=2))  # kept first, never half
    client.log_artifact(parent.run_id, str(study.path))
    return parent


def close_parent(parent: ParentRun, status: str) -> None:
    parent.client().set_terminated(parent.run_id, status=status)


def kill_orphans(parent: ParentRun, trial_numbers: list[int], status: str = "KILLED") -> None:
    """Mark KILLED (or `status`) the nested runs that dead workers or jobs left RUNNING, so the
    report ignores them."""
    if not trial_numbers:
        return
    client = parent.client()
    for run in nested_runs(parent, status="RUNNING"):
        if run.data.tags.get(f"{TAG}.trial") in {str(n) for n in trial_numbers}:
            client.set_terminated(run.info.run_id, status=status)


def nested_runs(parent: ParentRun, status: str | None = None) -> list:
    """Every nested run of the parent (optionally with one status), all pages."""
    client = parent.client()
    query = f"tags.mlflow.parentRunId = '{parent.run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    runs, token = [], None
    while True:
        page = client.search_runs([parent.experiment_id], filter_string=query, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def parent_for_report(folder: Path, tracking_uri: str | None = None) -> ParentRun | None:
    """The study folder's parent run, checked to be there (in `tracking_uri`, default the one the
    folder records) with every finished cell run it had: None when the study has not run here;
    AblateError when the folder or store cannot give its results, since a report made anyway
    would show finished cells as never run."""
    from ablate.errors import AblateError
    from ablate.tracking import check_sqlite_store, check_tracking_uri, sqlite_file

    saved = saved_parent(folder)  # a damaged file is named there
    if saved is None:
        return None
    uri = check_tracking_uri(tracking_uri or saved.tracking_uri)
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        raise AblateError(f"no MLflow store at {db} (tracking URI {uri!r}); this study folder's runs are in "
                          f"{saved.tracking_uri!r}")
    check_sqlite_store(uri)
    parent = ParentRun(saved.run_id, uri, saved.experiment_id)
    _check_parent_run(parent, saved)
    _check_no_deleted_cells(parent)
    return parent


def _check_parent_run(parent: ParentRun, saved: ParentRun) -> None:
    from mlflow.exceptions import MlflowException

    from ablate.errors import AblateError

    elsewhere = "" if parent.tracking_uri == saved.tracking_uri else \
        f" (this study folder records its runs in {saved.tracking_uri!r})"
    try:
        run = parent.client().get_run(parent.run_id)
    except MlflowException as exc:
        raise AblateError(f"the study's MLflow parent run {parent.run_id} is not in the tracking store "
                          f"{parent.tracking_uri!r}{elsewhere}: {exc.message}") from None
    if run.info.lifecycle_stage != "active":
        raise AblateError(f"the study's MLflow parent run {parent.run_id} was deleted in {parent.tracking_uri!r}; "
                          f"restore it (`mlflow runs restore --run-id {parent.run_id}`) to report its cells")


def _check_no_deleted_cells(parent: ParentRun) -> None:
    """Finished cell runs deleted in MLflow (with no finished run of their cell left) are an error:
    the study counts those cells done, so they would not run again, nor be reported."""
    from mlflow.entities import ViewType

    from ablate.errors import AblateError

    def cells(view) -> dict[str, str]:
        query = f"tags.mlflow.parentRunId = '{parent.run_id}' and attributes.status = 'FINISHED'"
        runs = parent.client().search_runs([parent.experiment_id], query, run_view_type=view, max_results=50000)
        return {r.data.tags.get(f"{TAG}.cell"): r.info.run_id for r in runs if r.data.tags.get(f"{TAG}.cell")}

    deleted = cells(ViewType.DELETED_ONLY)
    gone = {cell: run_id for cell, run_id in deleted.items() if cell not in cells(ViewType.ACTIVE_ONLY)} if deleted else {}
    if gone:
        listed = ", ".join(f"{cell} (run {run_id})" for cell, run_id in sorted(gone.items()))
        raise AblateError(f"{len(gone)} finished cell run(s) of this study were deleted in MLflow: {listed}. "
                          "Restore them (`mlflow runs restore --run-id ID`), or move the study folder aside and "
                          "run the study again")
