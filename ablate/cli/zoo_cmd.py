"""`ablate zoo build [NAME|tiny]`: build the offline tiny checkpoints."""

from __future__ import annotations

from typing import List, Optional

import typer

from ablate.cli.console import console
from ablate.cli.run_cmd import THREADS, make_progress, start_threads

app = typer.Typer(help="Offline tiny checkpoints built from configs (no hub access needed).", no_args_is_help=True)


@app.command("build")
def build(
    names: List[str] = typer.Argument(None, help="zoo entries, or 'tiny' (default) / 'small' for every entry of that size"),
    force: bool = typer.Option(False, "--force", help="rebuild even if present"),
    threads: Optional[int] = THREADS,
) -> None:
    """Build zoo checkpoints into $ABLATE_HOME/zoo (default ~/.cache/ablate/zoo)."""
    from ablate import zoo

    console.print(start_threads(threads).line(), highlight=False)

    wanted = zoo.entries_of_size(names[0]) if names in (["tiny"], ["small"]) else names or zoo.entries_of_size("tiny")
    for name in wanted:
        if name not in zoo.ZOO:
            from ablate.errors import AblateError, did_you_mean

            raise AblateError(f"unknown zoo entry {name!r}.{did_you_mean(name, zoo.ZOO)} Known: {', '.join(zoo.ZOO)}")
        if zoo.is_built(name) and not force:
            zoo.checked(name, zoo.zoo_dir() / name)  # a damaged folder says so, with the --force hint
            console.print(f"[green]present[/] zoo:{name} -> {zoo.zoo_dir() / name}", highlight=False)
            continue
        with make_progress() as progress:  # a bar for entries that pretrain
            path = zoo.build(name, force=force, progress=progress)
        console.print(f"[green]built[/] zoo:{name} -> {path}", highlight=False)


@app.command("list")
def list_zoo() -> None:
    """List zoo entries and whether they are built."""
    from ablate import zoo

    for name, spec in zoo.ZOO.items():
        state = "[green]built[/]" if zoo.is_built(name) else "[dim]not built[/]"
        console.print(f"zoo:{name:<20} {state:<20} {spec.description}", highlight=False)
