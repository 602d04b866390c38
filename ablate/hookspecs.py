"""Hook specifications: the whole plugin API of ablate.

A plugin is a module (or object) with functions marked `@ablate.hookspecs.hookimpl`,
exposed through the `ablate` entry-point group:

    [project.entry-points.ablate]
    my_plugin = "my_package.ablate_plugin"

Built-in components register through the same hook.
"""

from __future__ import annotations

import pluggy

PROJECT = "ablate"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ablate_register(registries) -> None:
    """Add components: `registries.connector.register("name", Config, builder)`.

    `registries` is an `ablate.registry.Registries`; use one attribute per kind
    (encoder, connector, llm, data_source, mixture, template, answer_format, evaluator).
    """
