"""`ablate data ...`: build the embedded data sets."""

from __future__ import annotations

from pathlib import Path

import typer

from ablate.cli.console import console

app = typer.Typer(help="Embedded data sets that ablate generates.", no_args_is_help=True)


@app.command("make-scienceqa")
def make_scienceqa(
    out: Path = typer.Argument(..., help="output folder (ScienceQA layout: problems.json, pid_splits.json, images/)"),
    seed: int = typer.Option(0, help="generator seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing data set in OUT"),
) -> None:
    """Write the embedded ScienceQA-format data set (built from easy-VQA images)."""
    from ablate.scienceqa.generator import make_scienceqa as make, majority_baseline

    path = make(out, seed=seed, overwrite=overwrite)
    console.print(f"[green]wrote[/] ScienceQA-format data to {path}", highlight=False)
    console.print(f"always-pick-the-most-common-letter baseline on test: {majority_baseline(path, 'test'):.2f}%", highlight=False)
