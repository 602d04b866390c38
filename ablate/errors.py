"""User-facing errors. The CLI prints these as messages, never as tracebacks."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import ClassVar


class AblateError(Exception):
    """A mistake the user can fix (bad recipe, missing file, unknown name)."""


class RegistryError(AblateError):
    pass


class PluginError(AblateError):
    """A plugin's component broke its contract (its builder raised, or built the wrong thing)."""


class MissingCheckpointError(AblateError):
    """A named checkpoint could not be loaded (no hub access, wrong path)."""

    def __init__(self, component: str, name: str, reason: str):
        self.component, self.name = component, name
        super().__init__(
            f"{component}: cannot load checkpoint {name!r} ({reason}).\n"
            f"  This machine may have no access to the Hugging Face Hub. Download the checkpoint\n"
            f"  elsewhere and point the recipe at the local folder, e.g.\n"
            f"    -s '{_override_hint(component)}=/path/to/{name.rsplit('/', 1)[-1]}'\n"
            f"  Without the checkpoints, the embedded CPU recipes (recipes/tiny_easyvqa.yaml) and\n"
            f"  `--scale tiny` studies run on offline tiny models (`ablate zoo list`)."
        )


class DataError(AblateError):
    """Bad or missing data, named by file and sample id."""


def _override_hint(component: str) -> str:
    return {"encoder": "model.encoder.name_or_path", "llm": "model.llm.name_or_path"}.get(
        component, f"model.{component}.name_or_path"
    )


def closest(name: str, candidates) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates) -> str:
    match = closest(name, candidates)
    return f" Did you mean {match!r}?" if match else ""


@dataclass
class Problem:
    """One problem in a recipe: where it is and what is wrong."""

    path: str
    message: str
    location: str | None = None  # "file.yaml:12"

    def render(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"  - {self.path or '<root>'}{where}: {self.message}"


@dataclass
class ProblemsError(AblateError):
    """Every problem found in one file (a recipe, a study), reported together."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    what: ClassVar[str] = "file"

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in {self.what}"
        return "\n".join([head, *(p.render() for p in self.problems)])


class RecipeError(ProblemsError):
    what = "recipe"
