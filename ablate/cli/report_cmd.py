"""`ablate report NAME [--scale paper|tiny] [--tracking-uri URI] [--include-stale]`: recompute a study's report from MLflow."""

from __future__ import annotations

from typing import Optional

import typer

from ablate.cli.console import console
from ablate.cli.study_cmd import INCLUDE_STALE, ScaleChoice


def report(
    name: str = typer.Argument(..., help="study name (studies/NAME.yaml) or a study file"),
    scale: ScaleChoice = typer.Option(ScaleChoice.paper, "--scale", help="which scale's results"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the study's)"),
    include_stale: bool = INCLUDE_STALE,
) -> None:
    """Rebuild a study's report (markdown, JSON, plots) from its MLflow runs and print it."""
    from ablate.study.report import render_markdown
    from ablate.study.runner import report_study

    result, paths = report_study(name, scale=scale.value, tracking_uri=tracking_uri, include_stale=include_stale)
    console.print(render_markdown(result), markup=False, highlight=False)
    console.print(f"report: {', '.join(str(p) for p in paths)}", highlight=False)
