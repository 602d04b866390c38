"""Where a study lives: its folder, its Optuna storage and the lock local workers share.

Default storage: an Optuna journal file in the study folder
(`<output_dir>/studies/<name>-<scale>/optuna.journal`), safe for several processes on one
machine (or a shared file system). For many machines pass an RDB URL
(`postgresql+psycopg://user:pass@host/db`); trials then send heartbeats, and a trial whose
heartbeat stops is failed and its cell queued again. `ABLATE_STUDY_HEARTBEAT_S` and
`ABLATE_STUDY_GRACE_S` set the heartbeat interval and how long a silent trial counts as alive.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path
from typing import Iterator

from ablate.errors import AblateError

JOURNAL_FILE = "optuna.journal"
LOCK_FILE = "queue.lock"
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 300
HEARTBEAT_ENV = "ABLATE_STUDY_HEARTBEAT_S"
GRACE_ENV = "ABLATE_STUDY_GRACE_S"
RDB_PREFIXES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
EXAMPLE_URL = "postgresql+psycopg://user:pass@host:5432/db"


def study_folder(output_dir: str | Path, name: str, scale: str) -> Path:
    return Path(output_dir) / "studies" / f"{name}-{scale}"


def optuna_study_name(name: str, scale: str) -> str:
    return f"{name}-{scale}"


def masked(url: str) -> str:
    """`url` with its password replaced by ***, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def database_url(url: str) -> str:
    """The SQLAlchemy URL for `url`. `postgres://` (as many hosting services print it) becomes
    `postgresql://`, and a PostgreSQL URL without a driver uses psycopg 3 (the `cluster` extra)
    when psycopg2, SQLAlchemy's default driver for it, is not installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = url.split(":", 1)[0]
    if "://" not in url or scheme.split("+", 1)[0] not in RDB_PREFIXES:
        raise AblateError(f"--storage {masked(url)!r}: expected a database URL such as {EXAMPLE_URL} "
                          f"(leave --storage out for the local journal file)")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise AblateError(f"--storage {masked(url)!r}: not a database URL ({exc}); e.g. {EXAMPLE_URL}") from None
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql")
    if parsed.drivername == "postgresql" and not _installed("psycopg2") and _installed("psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _seconds_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise AblateError(f"environment variable {name}={raw!r}: expected a whole number of seconds >= 1")
    return value


def open_storage(url: str | None, folder: Path, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None):
    """The journal file in `folder` when `url` is None, else an RDB storage with heartbeats."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))
    return _rdb_storage(
        database_url(url),
        heartbeat_interval or _seconds_from_env(HEARTBEAT_ENV, HEARTBEAT_INTERVAL_S),
        grace_period or _seconds_from_env(GRACE_ENV, GRACE_PERIOD_S),
    )


def _rdb_storage(url: str, heartbeat_interval: int, grace_period: int):
    import warnings

    from optuna.storages import RDBStorage

    shown = masked(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat_interval is marked experimental
            # pool_pre_ping: a cell can run for hours; a pooled connection the server or a
            # firewall dropped meanwhile is replaced instead of failing the trial's final tell
            return RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                              engine_kwargs={"pool_pre_ping": True})
    except ImportError:  # Optuna's message for a driver SQLAlchemy cannot import
        raise AblateError(f"--storage {shown!r}: the database driver is not installed; for PostgreSQL: "
                          f"pip install 'ablate[cluster]' (psycopg 3) and use postgresql+psycopg://") from None
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise AblateError(f"--storage {shown!r}: cannot open the Optuna storage: {type(exc).__name__}: {reason}") from None


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


def trial_id(storage, study, number: int) -> int:
    """A trial's storage id from its number, through the storage's public API."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


@contextlib.contextmanager
def heartbeat(storage, study, number: int) -> Iterator[None]:
    """Record trial `number`'s heartbeat every interval while the body runs (RDB storages with
    heartbeats; nothing on the journal file). Optuna beats only inside `study.optimize`, which a
    queue of enqueued cells does not use, so ablate beats through the storage's public
    `record_heartbeat`."""
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    ident, stop = trial_id(storage, study, number), threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(ident)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"ablate-heartbeat-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
