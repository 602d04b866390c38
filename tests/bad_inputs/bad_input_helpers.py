"""The bad-input corpus: every case must exit 2 with one message naming the file, the YAML path
or the sample, and never a traceback. `ablate` runs in-process (`ablate.cli.main`) except where
a subprocess is needed (plugins, which load once per process)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parents[1]
for folder in ("run", "data", "scienceqa", "model", "features"):  # their plain helper modules (tiny_run, data_helpers, ...)
    sys.path.insert(0, str(TESTS / folder))

import tiny_run  # noqa: E402


def good_recipe(root: Path) -> dict[str, Any]:
    """A valid tiny recipe (validates in well under a second); cases break one thing in it.
    Its MLflow store is not made: runs that need one call `tiny_run.prepare_store(root)`."""
    return {
        "name": "tiny",
        "output_dir": str(root / "out"),
        "model": copy.deepcopy(tiny_run.MODEL),
        "stages": [tiny_run.stage("align")],
        "eval": {"data": tiny_run.easy_vqa("qa", images=2, split="test", limit=4), "max_new_tokens": 3},
        "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "bad-inputs"},
    }


def write(path: Path, content: Any) -> Path:
    """Write bytes, text, or a dict/list as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and everything `ablate ARGV` printed."""
    from ablate.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_rejected(code: int, output: str, *names: Any) -> None:
    """Exit 2, no traceback, and the message names every one of `names`."""
    flat = " ".join(output.split())
    assert "Traceback" not in output, output
    assert code == 2, output
    assert "error:" in flat, output
    for name in names:
        assert " ".join(str(name).split()) in flat, f"{name!r} not in: {output}"
