"""`ablate study NAME|PATH [--scale paper|tiny|small] [--check] [--rehearse] [--seeds N] [--workers N] [--storage URL]
[--tracking-uri URI] [--retry-failed] [--include-stale] [--nproc-per-node N] [--nnodes M
--rdzv-endpoint HOST:PORT [--node-rank K]] [--launcher local|torchrun|deepspeed|slurm]
[--slurm KEY=VALUE ...] [--gpus-per-node G] [--partition P] [--time-limit T]
[--collective-timeout MIN]` and
`ablate study list`.

One command whose NAME `list` lists the studies: a click group with a NAME argument would
swallow the options that follow NAME."""

from __future__ import annotations

from enum import Enum
from typing import List, Optional

import typer

from ablate.cli.console import console
from ablate.cli.run_cmd import THREADS
from ablate.errors import AblateError

ALL = "all"  # with --check or --rehearse: every study found

INCLUDE_STALE = typer.Option(
    False, "--include-stale", help="count stale cells (they ran another recipe than the study file gives now) "
    "in the report's means, CIs and deltas; they are marked stale either way",
)


class ScaleChoice(str, Enum):
    paper = "paper"
    tiny = "tiny"
    small = "small"


class LauncherChoice(str, Enum):
    local = "local"
    torchrun = "torchrun"
    deepspeed = "deepspeed"
    slurm = "slurm"


NPROC = typer.Option(None, "--nproc-per-node", min=1, help="run each cell as a job of N processes per node "
                     "(torchrun, or deepspeed for DeepSpeed recipes); default: in the worker process")
NNODES = typer.Option(1, "--nnodes", min=1, help="nodes per cell job (needs --rdzv-endpoint)")
NODE_RANK = typer.Option(0, "--node-rank", min=0, help="with --nnodes: 0 runs the study (default); 1..M-1 join "
                        "the cell jobs node 0 starts")
RDZV = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous for --nnodes > 1")
SLURM = typer.Option(None, "--slurm", help="with --launcher slurm: a SLURM setting KEY=VALUE (repeatable), "
                     "e.g. partition=gpu, timeout_min=240")
GPUS_PER_NODE = typer.Option(None, "--gpus-per-node", min=0, help="with --launcher slurm: GPUs per node of each "
                             "cell job (sbatch --gpus-per-node; the ranks per node default to it)")
PARTITION = typer.Option(None, "--partition", help="with --launcher slurm: the SLURM partition")
TIME_LIMIT = typer.Option(None, "--time-limit", help="with --launcher slurm: wall-clock limit per cell job, "
                          "minutes or [D-]HH:MM:SS")
COLLECTIVE_TIMEOUT = typer.Option(
    None, "--collective-timeout", min=0.1, help="minutes a cell's ranks wait at a collective (default 120, or "
    "$ABLATE_COLLECTIVE_TIMEOUT_MIN): long enough for rank 0 to prepare data")
CHECK = typer.Option(
    False, "--check", help="check every cell without training or loading weights (models on the meta device: "
    "connector and init_connector shapes, trainable sets, named files and checkpoints, data vs template); "
    "print every problem at once and exit 2, or one OK line per cell. Every study runs it first",
)
REHEARSE = typer.Option(
    False, "--rehearse", help="with --scale paper: run every paper-scale cell for a few steps on CPU-size stand-ins of "
    "its checkpoints and data (the rehearsal kit, built once under $ABLATE_HOME/rehearsal); exit 1 if any cell fails",
)
LAUNCHER = typer.Option(None, "--launcher", help="how cell jobs start (default: torchrun, or deepspeed when "
                        "the recipe uses DeepSpeed)")


def study(
    name: str = typer.Argument(..., help="study name (studies/NAME.yaml), a study file, 'list' to list the studies, "
                               "or 'all' (with --check or --rehearse) for every study with the scale"),
    scale: ScaleChoice = typer.Option(ScaleChoice.paper, "--scale", help="paper: the paper's models; tiny: CPU-size models; small: ~10x tiny, one GPU"),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="seeds per arm (default: the study file's)"),
    workers: int = typer.Option(1, "--workers", min=1, help="local worker processes draining the queue"),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna RDB URL for many machines, e.g. postgresql+psycopg://user:pass@host/db "
        "(default: a journal file in the study folder)",
    ),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run cells that failed with an error again"),
    include_stale: bool = INCLUDE_STALE,
    nproc_per_node: Optional[int] = NPROC,
    nnodes: int = NNODES,
    rdzv_endpoint: Optional[str] = RDZV,
    launcher: Optional[LauncherChoice] = LAUNCHER,
    node_rank: int = NODE_RANK,
    slurm: Optional[List[str]] = SLURM,
    gpus_per_node: Optional[int] = GPUS_PER_NODE,
    partition: Optional[str] = PARTITION,
    time_limit: Optional[str] = TIME_LIMIT,
    collective_timeout: Optional[float] = COLLECTIVE_TIMEOUT,
    check: bool = CHECK,
    rehearse: bool = REHEARSE,
    threads: Optional[int] = THREADS,
) -> None:
    """Run every (arm x seed) cell of a study, resumably; print the report against the paper."""
    if name == "list":
        list_studies()
        return
    if name == ALL and not (check or rehearse):
        raise AblateError(f"'{ALL}' names every study only with --check or --rehearse; run studies one by one")
    if check:
        check_studies(_names(name, scale.value), scale.value, seeds)
        return
    from ablate.cli.run_cmd import make_progress, set_collective_timeout, start_threads
    from ablate.study.launch import LaunchOptions
    from ablate.study.runner import follow_study, run_study

    set_collective_timeout(collective_timeout)  # the cells' ranks inherit it, locally and under SLURM
    console.print(start_threads(threads).line(), highlight=False)  # cells in this process; workers get shares
    flags = {"gpus_per_node": gpus_per_node, "partition": partition, "time_limit": time_limit}
    settings = {**key_values(slurm or [], "--slurm"), **{k: v for k, v in flags.items() if v is not None}}
    launch = LaunchOptions(kind=launcher.value if launcher else None, nproc_per_node=nproc_per_node, nnodes=nnodes,
                           rdzv_endpoint=rdzv_endpoint, slurm=settings)
    if node_rank:
        follow_study(name, launch, node_rank, scale=scale.value, seeds=seeds, console=console)
        return
    if rehearse:
        _rehearse(name, scale.value, seeds=seeds, workers=workers, storage=storage, tracking_uri=tracking_uri,
                  launch=launch, progress_factory=make_progress)
        return
    run_study(
        name, scale=scale.value, seeds=seeds, workers=workers, storage=storage, tracking_uri=tracking_uri,
        retry_failed=retry_failed, include_stale=include_stale, console=console, progress_factory=make_progress,
        launch=launch,
    )


def check_studies(names: list[str], scale: str, seeds: Optional[int]) -> None:
    """`--check` of each study; with several, every study is checked and their problems are one error."""
    if len(names) == 1:
        check_study(names[0], scale, seeds)
        return
    failed = {}
    for one in names:
        try:
            check_study(one, scale, seeds)
        except AblateError as exc:
            failed[one] = str(exc)
    if failed:
        raise AblateError(f"{len(failed)} of {len(names)} studies have problems ({', '.join(failed)}):\n\n"
                          + "\n\n".join(failed.values()))


def check_study(name: str, scale: str, seeds: Optional[int]) -> None:
    """`--check`: StudyCheckError (exit 2) listing every problem, or the table of checked cells."""
    from ablate.study.discovery import find_study
    from ablate.study.preflight import check_lines, check_study_file
    from ablate.study.schema import load_study

    result = check_study_file(load_study(find_study(name)), scale, seeds)
    result.raise_if_problems()
    for line in check_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _names(name: str, scale: str) -> list[str]:
    """[name], or for 'all' every study found that has `scale` (studies without it are said)."""
    if name != ALL:
        return [name]
    from ablate.study.discovery import available
    from ablate.study.schema import load_study

    names = []
    for study, path in sorted(available().items()):
        if scale in load_study(path).spec.scales:
            names.append(study)
        else:
            console.print(f"{study}: no {scale} scale, left out", highlight=False)
    if not names:
        raise AblateError(f"no study has a {scale} scale")
    return names


def _rehearse(name: str, scale: str, **options) -> None:
    from ablate.study.rehearsal import rehearse_study

    if scale != "paper":
        raise AblateError(f"--rehearse rehearses the paper scale on CPU; --scale {scale} already runs on CPU as it is")
    names = _names(name, scale)
    # One process for every study: torch, transformers and DeepSpeed are imported once.
    codes = {one: rehearse_study(one, console=console, **options) for one in names}
    if len(names) > 1:
        console.print("rehearsals: " + ", ".join(f"{one} {'passed' if not code else 'failed'}"
                                                 for one, code in codes.items()), highlight=False)
    if any(codes.values()):
        raise typer.Exit(max(codes.values()))


def key_values(items: list[str], option: str) -> dict:
    """{KEY: VALUE} from KEY=VALUE strings, each VALUE read as a YAML scalar (240 -> int)."""
    import yaml

    from ablate.errors import AblateError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AblateError(f"{option} {item!r}: expected KEY=VALUE, e.g. partition=gpu")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def list_studies() -> None:
    from rich.markup import escape
    from rich.table import Table

    from ablate.errors import AblateError
    from ablate.study.discovery import available
    from ablate.study.schema import load_study

    table = Table(title="studies", title_justify="left")
    for col in ("name", "scales", "arms", "paper", "description"):
        table.add_column(col, overflow="fold")
    for name, path in available().items():
        try:
            study = load_study(path)
        except AblateError as exc:
            table.add_row(name, "", "", "", f"[red]invalid:[/] {escape(str(exc).splitlines()[0])}")
            continue
        spec = study.spec
        arms = "; ".join(f"{a.name}: {', '.join(a.labels())}" for a in spec.axes)
        sources = sorted({ref.source for ref in spec.paper})
        table.add_row(name, ", ".join(study.scales), escape(arms), escape("; ".join(sources)),
                      escape(_first_sentence(spec.description)))
    console.print(table)


def _first_sentence(text: str) -> str:
    import re

    text = " ".join(text.split())
    match = re.search(r"[.?!] ", text)
    return text if match is None else text[: match.start() + 1]
