"""The `scienceqa` data source: ScienceQA problems rendered by an answer format.

    data: {type: scienceqa, root: /data/ScienceQA/data/scienceqa, split: train,
           answer_format: QCM-LEA, limit: null, image_position: auto}

`root` holds the ScienceQA layout (`ablate.scienceqa.problems`); left out, it is the embedded
ScienceQA-format dataset built on first use (`ensure_scienceqa`). The answer format is the
source's own `answer_format`, else the recipe-level one given to the builder, else `QCM-LEA`
(LLaVA's ScienceQA fine-tuning format; its evaluation used the same QCM prompt).

`image_position: auto` follows LLaVA: the image token goes after the text in the training
splits (train, trainval, minitrain; `convert_sqa_to_llava.py`) and before it in the others
(`model_vqa_science.py`); LLaVA-1.5 formats always put it first.

Each sample: id = pid; image = absolute path or None (text-only problem); conversations =
[human, gpt]; data_type = "scienceqa"; meta = `problems.category_meta` plus `answer` (what
the format trains the model to answer: the letter, or the option text for llava15_short)
and `answer_format`. Problems are checked when the source is built: a malformed record or a
missing image raises DataError naming the pid, or with on_bad_sample="skip" is left out and
listed in `DataSource.skipped`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ablate.data.contracts import DataSource
from ablate.data.sources.base import all_skipped_error
from ablate.errors import AblateError, DataError
from ablate.fingerprint import content_hash, file_fingerprint, image_stamp
from ablate.recipe.component import Component
from ablate.registry import ComponentConfig
from ablate.scienceqa import problems as sqa
from ablate.scienceqa.formats import resolve_answer_format

TRAINING_SPLITS = ("train", "trainval", "minitrain")


class ScienceQASourceConfig(ComponentConfig):
    root: str | None = Field(None, description="ScienceQA folder (problems.json, pid_splits.json, images/); "
                             "default: the embedded ScienceQA-format dataset")
    split: str = "train"
    limit: int | None = Field(None, gt=0, description="only the first N problems of the split")
    answer_format: Component("answer_format") | None = Field(
        None, description="default: the recipe's answer_format, else QCM-LEA")
    image_position: Literal["auto", "start", "end"] = Field(
        "auto", description="where <image> goes: auto = after the text in training splits, before it otherwise")


def build_scienceqa_source(
    config: ScienceQASourceConfig, *, answer_format: Any = None, on_bad_sample: str = "error"
) -> DataSource:
    """ScienceQA problems (problems.json, pid_splits.json, images/) rendered by an answer format."""
    if on_bad_sample not in ("error", "skip"):
        raise AblateError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    root = _root(config)
    fmt = resolve_answer_format(config.answer_format if config.answer_format is not None else answer_format)
    position = config.image_position
    if position == "auto":
        position = "end" if config.split in TRAINING_SPLITS else "start"

    problems = sqa.load_problems(root)
    pids = sqa.load_split(root, config.split)
    chosen: list[tuple[str, dict[str, Any], Path | None]] = []
    skipped: list[tuple[str, str]] = []
    for pid in pids:
        if config.limit is not None and len(chosen) >= config.limit:
            break
        reason, image = _check(root, pid, problems.get(pid), config.split)
        if reason is None:
            chosen.append((pid, problems[pid], image))
        elif on_bad_sample == "skip":
            skipped.append((pid, reason))
        else:
            raise DataError(f"ScienceQA {root / sqa.PROBLEMS_FILE}: pid {pid} (split {config.split}): {reason}")
    if skipped and not chosen:
        raise all_skipped_error(f"ScienceQA {root / sqa.PROBLEMS_FILE} (split {config.split})", skipped)

    def iter_samples():
        for pid, problem, image in chosen:
            meta = sqa.category_meta(pid, problem)
            meta.update(answer=fmt.answer(problem), answer_format=fmt.key)
            yield {
                "id": pid,
                "image": str(image) if image is not None else None,
                "conversations": fmt.conversations(problem, position),
                "data_type": "scienceqa",
                "meta": meta,
            }

    fingerprint, files = _fingerprint(config, fmt.key, position, root, [img for _, _, img in chosen])
    return DataSource(name=f"scienceqa:{config.split}", fingerprint=fingerprint,
                      iter_samples=iter_samples, skipped=skipped, files=files)


def _root(config: ScienceQASourceConfig) -> Path:
    if config.root is None:
        from ablate.scienceqa.generator import ensure_scienceqa

        return ensure_scienceqa()
    root = Path(config.root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"ScienceQA root {config.root!r} is not a folder")
    return root


def _check(root: Path, pid: str, problem: Any, split: str) -> tuple[str | None, Path | None]:
    if problem is None:
        return f"pid is listed in {sqa.SPLITS_FILE} but not in {sqa.PROBLEMS_FILE}", None
    reason = sqa.problem_error(problem) or (sqa.pid_problem(pid) if problem.get("image") else None)
    if reason is not None:
        return reason, None
    image = sqa.image_path(root, pid, problem, split)
    if image is not None and not image.is_file():
        return f"image {image} is missing", None
    return None, image


def _fingerprint(config: ScienceQASourceConfig, fmt_key: str, position: str, root: Path,
                 images: list) -> tuple[str, dict[str, str]]:
    """(the source's fingerprint, its data files' fingerprints): the JSON files by content,
    the images by `image_stamp` (ablate.fingerprint's rule)."""
    files = {str(root / name): file_fingerprint(root / name) for name in (sqa.PROBLEMS_FILE, sqa.SPLITS_FILE)}
    parts = {
        "source": "scienceqa", "version": 2, "root": str(root), "split": config.split, "limit": config.limit,
        "answer_format": fmt_key, "image_position": position, "files": files,
        "images": [image_stamp(p) for p in images if p is not None],
    }
    return content_hash(parts, length=16), files
