"""The ABLATE_HOME every test of one pytest session shares (zoo checkpoints, rehearsal kit, data).

`ABLATE_TEST_HOME` when set; else one folder under the session's base temp. Under pytest-xdist
each worker has its own base temp below a folder they share, and the home goes there, so the
workers build each zoo entry once between them (builds take a file lock) rather than once each.
"""

from __future__ import annotations

import os


def session_home(tmp_path_factory) -> str:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return os.environ.get("ABLATE_TEST_HOME") or str(base / "ablate_home")
