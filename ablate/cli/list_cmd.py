"""`ablate list [KIND]`: every registered component with its config fields."""

from __future__ import annotations

from typing import Optional

import typer

from ablate.cli.console import console


def _type_name(annotation) -> str:
    """A field's type as a recipe author reads it: validators left out (they printed as function
    reprs with addresses), a component field as `<kind> block`."""
    import types
    from typing import Annotated, Literal, Union, get_args, get_origin

    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        kind = _component_kind(args[1:])
        return f"{kind} block" if kind else _type_name(args[0])
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "").replace("ablate.registry.", "")


def _component_kind(metadata) -> str | None:
    """The registry kind of a `Component(kind)` field (its validator carries it), or None."""
    kinds = [getattr(getattr(m, "func", None), "component_kind", None) for m in metadata]
    return next((k for k in kinds if k), None)


def _field_type(field) -> str:
    # pydantic keeps a top-level Annotated's metadata on the field, not in its annotation.
    kind = _component_kind(field.metadata)
    return f"{kind} block" if kind else _type_name(field.annotation)


def _default(field) -> str:
    if field.is_required():
        return "[bold]required[/]"
    from rich.markup import escape

    return escape(repr(field.get_default(call_default_factory=True)))


def list_components(
    kind: Optional[str] = typer.Argument(None, help="encoder, connector, llm, data_source, mixture, template, answer_format, evaluator"),
) -> None:
    """List registered components, with their config fields, types and defaults."""
    from rich.text import Text

    from ablate.registry import registries

    regs = registries()
    selected = [regs[kind]] if kind is not None else list(regs)  # `ablate list ""` is no kind, not all
    if kind is None:
        _print_plugins()
    for registry in selected:
        console.print(Text(f"{registry.kind} ({len(registry)})", style="bold underline"))
        for entry in registry:
            line = Text("  ") + Text(entry.name, style="bold cyan")
            if entry.description:
                line += Text(f"  {entry.description}")
            if not entry.origin.endswith("(plugin ablate)"):
                line += Text(f"  [{entry.origin.rsplit('(', 1)[-1].rstrip(')')}]", style="magenta")
            console.print(line)
            for name, field in entry.config.model_fields.items():
                if name == "type":
                    continue
                row = Text(f"      {name}: ") + Text(_field_type(field), style="green")
                row += Text(" = ") + Text.from_markup(_default(field))
                if field.description:
                    row += Text(f"  # {field.description}", style="dim")
                console.print(row)
        console.print()


def _print_plugins() -> None:
    """The installed plugins by entry-point name: the names ABLATE_DISABLE_PLUGINS takes."""
    from ablate.plugin_manager import DISABLE_ENV, loaded_plugins

    plugins = loaded_plugins()
    if plugins:
        named = ", ".join(f"{name} ({dist})" for name, dist in plugins)
        console.print(f"[bold]plugins[/] {named}  [dim](disable with {DISABLE_ENV}=NAME,...)[/]", highlight=False)
        console.print()
