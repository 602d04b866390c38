"""`ablate export RUN_DIR OUT --format hf-llava [--dtype D] [--repo-id ID]`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ablate.cli.console import console


class ExportFormat(str, Enum):
    hf_llava = "hf-llava"


class ExportDtype(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def export(
    run_dir: Path = typer.Argument(..., help="a finished run folder (<output_dir>/<name>-<hash>)"),
    out: Path = typer.Argument(..., help="new folder to write the checkpoint to"),
    export_format: ExportFormat = typer.Option(ExportFormat.hf_llava, "--format",
                                               help="hf-llava: transformers LlavaForConditionalGeneration"),
    dtype: Optional[ExportDtype] = typer.Option(None, "--dtype",
                                                help="weights dtype (default: the LLM's recipe dtype)"),
    repo_id: Optional[str] = typer.Option(None, "--repo-id", help="also push the folder to this Hugging Face Hub "
                                          "model repo (needs network and a token)"),
) -> None:
    """Export a trained run as a checkpoint other tools load (LoRA merged)."""
    from ablate.run.hf_llava import export_run
    from ablate.run.hf_llava.export import cast_parts, part_dtype
    from ablate.run.hf_llava.hub import check_can_push, push_folder
    from ablate.run.trained import read_run

    if repo_id is not None:
        check_can_push(repo_id, out)
    path = export_run(run_dir, out, dtype=dtype.value if dtype is not None else None)
    console.print(f"[green]exported[/] {run_dir} -> {path} ({export_format.value})", highlight=False)
    recipe = read_run(run_dir)[0]
    written = dtype.value if dtype is not None else part_dtype(recipe.model.llm)
    cast = cast_parts(recipe, written)
    if cast:  # one dtype in a Llava checkpoint: say which parts lose their run's precision
        console.print(f"[yellow]note:[/] written in {written}, so {', '.join(cast)} "
                      f"{'is' if len(cast) == 1 else 'are'} cast; logits agree with the run's to that "
                      "precision, not exactly", highlight=False)
    if repo_id is not None:
        url = push_folder(path, repo_id)
        console.print(f"[green]pushed[/] {path} -> {url}", highlight=False)
