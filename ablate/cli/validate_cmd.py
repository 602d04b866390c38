"""`ablate validate RECIPE [-s path=value ...]`: print the resolved recipe or every problem."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
import yaml

from ablate.cli.console import console

Overrides = typer.Option([], "--set", "-s", help="override a field: -s model.connector.depth=3 (repeatable)")


def validate(recipe: Path = typer.Argument(..., help="recipe YAML"), overrides: List[str] = Overrides) -> None:
    """Validate a recipe (with overrides) and print its resolved form and hash."""
    from ablate.recipe import load_recipe, recipe_hash

    resolved = load_recipe(recipe, overrides)
    console.print(f"# {recipe} is valid; recipe hash [bold]{recipe_hash(resolved)}[/]", highlight=False)
    console.print(yaml.safe_dump(resolved.resolved(), sort_keys=False), highlight=False, markup=False)
