"""`ablate data ...`: build the embedded data sets, prepare released benchmarks, write lmms-eval tasks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List

import typer

from ablate.cli.console import console
from ablate.cli.validate_cmd import Overrides

app = typer.Typer(help="Embedded data sets that ablate generates, and released benchmarks it prepares.",
                  no_args_is_help=True)

# benchmark name -> (llava_bench layout, default output file in the copy's folder)
PREPARABLE = {"llava-bench-coco": ("coco", "qa90_llava.json"), "llava-bench-wild": ("wild", "llava_bench_wild.json")}


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


@app.command("prepare")
def prepare(
    name: str = typer.Argument(..., help="llava-bench-coco (LLaVA-Bench (COCO)) or llava-bench-wild (In-the-Wild)"),
    folder: Path = typer.Argument(..., help="your copy of the released files, with LLaVA's rule.json"),
    out: Path | None = typer.Option(
        None, "--out", help="the eval file to write (.json list or .jsonl; default in FOLDER)"),
    rules: Path | None = typer.Option(
        None, "--rules", help="LLaVA's llava/eval/table/rule.json (default: FOLDER/rule.json)"),
    images: Path | None = typer.Option(None, "--images", help="image folder (default: FOLDER/images, else FOLDER)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output file"),
) -> None:
    """Check a released benchmark's files and write the eval set ablate's `llava_json` source reads."""
    from ablate.data.sources.llava_bench import LlavaBenchConfig, write_prepared
    from ablate.errors import DataError, did_you_mean

    if name not in PREPARABLE:
        raise DataError(
            f"unknown benchmark {name!r}; ablate prepares {', '.join(PREPARABLE)}.{did_you_mean(name, PREPARABLE)}")
    layout, default_name = PREPARABLE[name]
    config = LlavaBenchConfig(path=str(folder), layout=layout, rules=str(rules) if rules else None,
                              image_root=str(images) if images else None)
    target = out or folder / default_name
    records, image_root = write_prepared(config, target, overwrite=overwrite)
    counts = ", ".join(f"{c} {n}" for c, n in Counter(r["category"] for r in records).items())
    console.print(f"[green]wrote[/] {len(records)} questions ({counts}) to {target}", highlight=False)
    console.print(f"eval data: {{type: llava_json, path: {target}, image_root: {image_root}, "
                  "data_type_field: category}", highlight=False)


@app.command("lmms-task")
def lmms_task(
    source: Path = typer.Argument(..., help="a recipe, or a YAML file holding an eval section (data, evaluator, ...)"),
    out: Path = typer.Argument(..., help="folder of task folders: lmms-eval's --include_path, a recipe's eval.include_path"),
    name: str | None = typer.Option(None, "--name", help="the task's name (default: the recipe's name, else the file's)"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="the first N samples (default: eval.limit, else all)"),
    embed_images: bool = typer.Option(False, "--embed-images", help="store each image's bytes in the documents "
                                      "instead of its absolute path (a task folder that can move)"),
    overrides: List[str] = Overrides,
) -> None:
    """Write eval.data as a local lmms-eval task, scored as eval.evaluator scores it."""
    from ablate.eval.lmms_eval_task import load_eval_source, write_eval_task

    loaded = load_eval_source(source, overrides)
    task = write_eval_task(out, name or loaded.name, loaded.section, answer_format=loaded.answer_format, limit=limit,
                           embed_images=embed_images)
    counts = ", ".join(f"{c} {n}" for c, n in task.categories().items())
    lines = [f"wrote task {task.name}: {len(task.docs)} documents ({counts}) in {task.data_path}, the task in "
             f"{task.yaml_path}", f"metrics: {', '.join(task.metrics)}",
             "score a recipe's model with it, or a finished run folder:",
             f"  ablate run {source if loaded.is_recipe else 'RECIPE'} -s eval.harness=lmms_eval "
             f"-s 'eval.tasks=[{task.name}]' -s eval.include_path={out}",
             f"  lmms-eval --model ablate --model_args pretrained=RUN_DIR --tasks {task.name} --include_path {out}"]
    for line in lines:  # commands to copy: no markup ("[...]"), no wrapping
        console.print(line, markup=False, highlight=False, soft_wrap=True)
