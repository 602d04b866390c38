"""The `ablate` command line. Subcommands live in one module each and import heavy
libraries only when they run, so `ablate --help` and `ablate list` start fast."""

from __future__ import annotations

import sys
import warnings

import typer

from ablate.cli import data_cmd, export_cmd, list_cmd, plan_cmd, report_cmd, run_cmd, study_cmd, validate_cmd, zoo_cmd
from ablate.cli.console import err_console

app = typer.Typer(
    name="ablate",
    help="Ablation studies for LLaVA-style vision-language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("list")(list_cmd.list_components)
app.command("validate")(validate_cmd.validate)
app.command("run")(run_cmd.run)
app.add_typer(zoo_cmd.app, name="zoo")
app.add_typer(data_cmd.app, name="data")
app.command("study")(study_cmd.study)
app.command("report")(report_cmd.report)
app.command("export")(export_cmd.export)
app.command("plan")(plan_cmd.plan)


def main(argv: list[str] | None = None) -> int:
    from ablate.errors import AblateError
    from ablate.plugin_manager import PluginWarning

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        else:
            _default_showwarning(message, category, filename, lineno, file, line)

    _default_showwarning = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        # Standalone mode lets typer print usage errors itself; ablate's own errors are ours.
        app(args=argv, standalone_mode=True, prog_name="ablate")
    except AblateError as exc:
        _print_error(exc)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _print_error(exc: Exception) -> None:
    from rich.text import Text

    # soft_wrap: no line breaks inserted, so a long path in the message stays one piece to copy
    err_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
