"""MLflow: one run per `ablate run`, nested under a study's parent run when there is one.

The default store is MLflow 3's own local default (`sqlite:///mlflow.db` in the working
directory); `--tracking-uri` or MLFLOW_TRACKING_URI point elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_PARAM_LEN = 6000
ARTIFACTS_ENV = "ABLATE_MLFLOW_ARTIFACTS"


# The schemes MLflow's tracking store registry knows (mlflow.tracking._tracking_service.utils,
# private, and importing mlflow costs seconds, so `validate` checks against this list);
# database schemes may name a driver (`postgresql+psycopg2://`). Plugins add more through the
# `mlflow.tracking_store` entry points, which are read too.
MLFLOW_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc")
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_uri(explicit: str | None = None) -> str:
    """The URI a run tracks to (explicit, else MLFLOW_TRACKING_URI, else the default), checked."""
    if explicit:
        return check_tracking_uri(explicit)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return check_tracking_uri(env, "MLFLOW_TRACKING_URI") if env else DEFAULT_URI


def check_tracking_uri(uri: str, where: str = "tracking URI") -> str:
    """`uri` if MLflow can open it; AblateError naming it (and a likely fix) otherwise."""
    problem = tracking_uri_problem(uri)
    if problem:
        from ablate.errors import AblateError

        raise AblateError(f"{where} {uri!r}: {problem}")
    return uri


def tracking_uri_problem(uri: str) -> str | None:
    """Why MLflow could not use `uri` as a tracking store, or None."""
    from urllib.parse import urlparse

    if not isinstance(uri, str) or not uri.strip():
        return "must be a non-empty URI such as sqlite:///mlflow.db"
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return _plain_path_problem(Path(uri).expanduser())
    base = scheme.split("+", 1)[0]
    known = (*MLFLOW_SCHEMES, *_plugin_schemes())
    if base not in known:
        from ablate.errors import did_you_mean

        return f"unknown scheme {scheme!r}.{did_you_mean(base, known)} MLflow accepts {', '.join(known)} or a folder path"
    if base == "sqlite" and not (uri.startswith(f"{scheme}:///") or uri == f"{scheme}://"):
        return f"a sqlite URI needs three slashes before a relative path: {scheme}:///{parsed.netloc}{parsed.path}"
    if base in ("http", "https") + _DB_SCHEMES[1:] and not parsed.netloc:
        return f"a {scheme} URI needs a host, e.g. {scheme}://localhost:5000"
    if base == "file":
        return _plain_path_problem(Path(parsed.path).expanduser())
    return None


def _plain_path_problem(path: Path) -> str | None:
    """A plain path is a file store: a folder (made when missing). A .db file is a typo for sqlite."""
    if path.suffix == ".db":
        return f"a plain path is an MLflow folder store; for a database file write sqlite:///{path}"
    if path.exists() and not path.is_dir():
        return "a plain path is an MLflow folder store, but this is a file"
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("true", "1"):
        # MLflow 3 refuses folder stores at their first use, deep in a run, unless this is set.
        return ("a plain path or file: URI is an MLflow folder store, which MLflow 3 keeps in maintenance mode "
                "and refuses unless MLFLOW_ALLOW_FILE_STORE=true; use a database, e.g. sqlite:///mlflow.db")
    return None


def _plugin_schemes() -> tuple[str, ...]:
    from importlib import metadata

    return tuple(ep.name for ep in metadata.entry_points(group="mlflow.tracking_store"))


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested dict/list -> {"model.connector.depth": "2", "stages.0.lr": "0.002"}."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(data, list) and data and all(isinstance(x, (dict, list)) for x in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = str(data)[:MAX_PARAM_LEN]
    return out


def git_commit(path: str | Path = ".") -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: `$ABLATE_MLFLOW_ARTIFACTS/<experiment>` when set
    (a shared folder, or an artifact URI such as s3://bucket/path, for a database store that
    several machines use), else next to a sqlite store's file (`<db folder>/mlruns/<experiment>`).

    MLflow's default puts them under `./mlruns` of whatever directory the run started in, so a
    store in another folder would have its artifacts scattered over working directories.
    """
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment) or "experiment"
    if root := os.environ.get(ARTIFACTS_ENV):
        if "://" in root:
            return f"{root.rstrip('/')}/{safe}"
        return (Path(root).expanduser().resolve() / safe).as_uri()
    db = sqlite_file(uri)
    return None if db is None else (db.parent / "mlruns" / safe).as_uri()


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (None for other stores and in-memory ones)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):].split("?", 1)[0] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0]).expanduser().resolve()


@contextlib.contextmanager
def sqlite_creation_lock(uri: str) -> Iterator[None]:
    """Hold a file lock beside a sqlite store while it is opened (MLflow creates and migrates a
    new database on first use; two runs started at once on a fresh file would both migrate it,
    and the second fails inside alembic). Other stores need no lock: their servers serialise."""
    db = sqlite_file(uri)
    if db is None:
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock"):
        yield


def check_sqlite_store(uri: str) -> None:
    """A sqlite store that exists must be a sound database: MLflow would fail on it with an SQL
    traceback (at its first query, or halfway through the run for a damaged page)."""
    from ablate.errors import AblateError

    db = sqlite_file(uri)
    if db is None or not db.exists() or (db.is_file() and db.stat().st_size == 0):
        return  # sqlite makes a new database in a missing or empty file
    problem = "it is a folder" if db.is_dir() else _sqlite_problem(db)
    if problem:
        raise AblateError(f"MLflow store {db} (tracking URI {uri!r}) is not a sound sqlite database ({problem}); "
                          f"restore it from a copy, or move it aside and a new one is made")


def _sqlite_problem(db: Path) -> str | None:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as err:
        return str(err)
    return None if rows == [("ok",)] else str(rows[0][0]).strip().splitlines()[0]


def _quiet_mlflow() -> None:
    import logging

    # alembic prints every migration on a fresh sqlite store; users want the run, not that.
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def _store_errors_named(uri: str) -> Iterator[None]:
    """MLflow's refusal of a store (a file store, which MLflow 3 keeps in maintenance mode; a
    server that does not answer) as one AblateError naming the URI, not a traceback."""
    from mlflow.exceptions import MlflowException

    from ablate.errors import AblateError

    try:
        yield
    except MlflowException as exc:
        raise AblateError(f"MLflow cannot use the tracking store {uri!r}: {exc.message} "
                          "(set tracking.tracking_uri or --tracking-uri, e.g. sqlite:///mlflow.db)") from None


class Tracker:
    """Thin wrapper over one MLflow run. Only rank 0 of a distributed job logs."""

    def __init__(self, uri: str | None, experiment: str, enabled: bool = True):
        self.enabled = enabled
        self.uri = tracking_uri(uri)
        self.experiment = experiment
        self.run_id: str | None = None
        if enabled:
            _quiet_mlflow()
            import mlflow

            mlflow.set_tracking_uri(self.uri)
            with sqlite_creation_lock(self.uri), _store_errors_named(self.uri):
                check_sqlite_store(self.uri)
                self._client = mlflow.MlflowClient(self.uri)
                self.experiment_id = self._experiment_id(experiment)

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        exp = self._client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self._client.create_experiment(name, artifact_location=artifact_location(self.uri, name))
        except MlflowException:  # another worker created it just now
            exp = self._client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    @contextlib.contextmanager
    def run(self, run_name: str, run_id: str | None = None, parent_run_id: str | None = None,
            tags: dict[str, str] | None = None) -> Iterator["Tracker"]:
        """Start (or reopen, for --resume) a run; mark it FAILED with the error if the body raises."""
        if not self.enabled:
            yield self
            return
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if run_id is None:
            run = self._client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
            run_id = run.info.run_id
        else:
            self._client.update_run(run_id, status="RUNNING")
            for k, v in all_tags.items():
                self._client.set_tag(run_id, k, v)
        self.run_id = run_id
        try:
            yield self
        except BaseException as exc:
            self._client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
            self._client.set_terminated(run_id, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        self._client.set_terminated(run_id, status="FINISHED")

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        existing = self._client.get_run(self.run_id).data.params
        new = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(new), 100):
            self._client.log_batch(self.run_id, params=new[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled or not metrics:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self._client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.enabled:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.enabled:
            with tempfile.TemporaryDirectory() as tmp:
                p = Path(tmp) / Path(artifact_file).name
                p.write_text(text)
                parent = str(Path(artifact_file).parent)
                self.log_artifact(p, None if parent == "." else parent)
