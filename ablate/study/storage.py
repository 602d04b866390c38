"""Where a study lives: its folder, its Optuna storage and the lock local workers share.

Default storage: an Optuna journal file in the study folder
(`<output_dir>/studies/<name>-<scale>/optuna.journal`), safe for several processes on one
machine (or a shared file system). For many machines pass an RDB URL
(`postgresql+psycopg2://user:pass@host/db`); trials then send heartbeats, and a trial whose
heartbeat stops is failed and its cell queued again.
"""

from __future__ import annotations

from pathlib import Path

from ablate.errors import AblateError

JOURNAL_FILE = "optuna.journal"
LOCK_FILE = "queue.lock"
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 300
RDB_PREFIXES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


def study_folder(output_dir: str | Path, name: str, scale: str) -> Path:
    return Path(output_dir) / "studies" / f"{name}-{scale}"


def optuna_study_name(name: str, scale: str) -> str:
    return f"{name}-{scale}"


def open_storage(url: str | None, folder: Path, *, heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
                 grace_period: int = GRACE_PERIOD_S):
    """The journal file in `folder` when `url` is None, else an RDB storage with heartbeats."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))
    if not url.split(":", 1)[0].split("+", 1)[0] in RDB_PREFIXES:
        raise AblateError(
            f"--storage {url!r}: expected a database URL such as postgresql+psycopg2://user:pass@host/db "
            f"(leave --storage out for the local journal file)"
        )
    import warnings

    from optuna.storages import RDBStorage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat_interval is marked experimental
            return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    except ModuleNotFoundError as exc:
        raise AblateError(f"--storage {url!r}: the database driver is not installed ({exc}); "
                          f"for PostgreSQL: pip install psycopg2-binary") from None
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise AblateError(f"--storage {url!r}: cannot open the Optuna storage: {type(exc).__name__}: {exc}") from None


def queue_lock(folder: Path):
    """File lock around "is a cell queued? then ask for it" so local workers never over-ask."""
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / LOCK_FILE))


def load_or_create(storage, name: str, direction: str):
    """(optuna.Study, created) — created once, loaded on every later run."""
    import optuna

    try:
        return optuna.create_study(study_name=name, storage=storage, direction=direction), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        wanted = optuna.study.StudyDirection.MAXIMIZE if direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
        if study.direction != wanted:
            raise AblateError(
                f"Optuna study {name!r} exists with direction {study.direction.name.lower()}, "
                f"but the study file says {direction}; use another --storage or delete the study"
            ) from None
        return study, False
