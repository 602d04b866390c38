"""Built-in components register through the same hook that plugins use."""

from __future__ import annotations

import importlib

from ablate.hookspecs import hookimpl

# Each module exposes `register(registries)`; importing them is cheap (no torch at import).
BUILTIN_MODULES = (
    "ablate.components.encoders",
    "ablate.components.connectors",
    "ablate.components.llms",
    "ablate.data.sources",
    "ablate.data.mixtures",
    "ablate.templates",
    "ablate.scienceqa",
    "ablate.eval",
)


@hookimpl
def ablate_register(registries) -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(name).register(registries)
