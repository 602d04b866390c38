"""A throw-away PostgreSQL server for the tests: initdb in a temp folder, started on a free local
port, stopped (and its folder removed) at the end.

The server binaries come from the distribution (`apt-get install postgresql` puts them under
/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as root the server
runs as the `postgres` system user the package creates. Nothing here skips: a missing server
is a test failure that says how to install it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "postgres"
DB_USER = "ablate"
INSTALL_HINT = "install it with `apt-get install -y postgresql` (Debian/Ubuntu) or put initdb and pg_ctl on PATH"


class PostgresMissing(RuntimeError):
    pass


def server_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: PATH first, else the newest Debian-packaged version."""
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not candidates:
        raise PostgresMissing(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL_HINT}")
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    password: str
    version: str = ""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *argv: str) -> list[str]:
        """Run as the postgres system user when we are root (the server will not run as root)."""
        if os.geteuid() == 0:
            return ["runuser", "-u", SYSTEM_USER, "--", *argv]
        return list(argv)

    def _run(self, *argv: str) -> str:
        proc = subprocess.run(self._cmd(*argv), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}{tail}")
        return proc.stdout

    def start(self) -> "PostgresServer":
        (self.root / "pwfile").write_text(self.password + "\n")
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", DB_USER, "--auth=scram-sha-256",
                  f"--pwfile={self.root / 'pwfile'}", "--no-sync", "-E", "UTF8", "--locale=C")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        self.version = self._run(str(self.bin_dir / "postgres"), "--version").strip()
        return self

    def connect(self, database: str = "postgres"):
        """A psycopg 3 connection (autocommit) as the test user."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, password=self.password,
                               dbname=database, autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """CREATE DATABASE `name` (a copy of `template` if given); returns its SQLAlchemy URL."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.dsn(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb + pg_ctl start in a fresh temp folder (owned by the postgres user when we are root)."""
    bin_dir = server_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="ablate-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            shutil.rmtree(root)
            raise PostgresMissing(f"the server cannot run as root and there is no {SYSTEM_USER!r} user; "
                                  f"{INSTALL_HINT} (the package creates the user)") from None
        shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
    server = PostgresServer(bin_dir, root, free_port(), secrets.token_hex(8))
    try:
        return server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
