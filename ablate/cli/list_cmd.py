"""`ablate list [KIND]`: every registered component with its config fields."""

from __future__ import annotations

from typing import Optional

import typer

from ablate.cli.console import console


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None").replace("ablate.registry.", "")


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
                row = Text(f"      {name}: ") + Text(_type_name(field.annotation), style="green")
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
