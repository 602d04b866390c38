"""A DataSource -> a training dataset whose rows are tokenized when they are read.

Preparing the data tokenizes nothing (LLaVA's lazy preprocessing): tokenizing a mix665k-shaped
file up front took 17 minutes on 2 cores and now its first batch comes after one minute
(benchmarks/data_prep.py).

1. `raw_dataset`: the source's samples, written once per source fingerprint to an Arrow file
   in the cache folder; later calls, and the other ranks under torchrun, memory-map it. Each
   row carries LLaVA's length estimates, from the whitespace-separated words of its turns:
   `length` (the words, plus 128 with an image: LLaVA's `lengths`) for transformers'
   group_by_length, and `modality_length` (the words, negative for a text-only sample: LLaVA's
   `modality_lengths`); and `opens_with_gpt` / `ends_with_human`, the turns LLaVA's preprocessing
   drops (an opening reply) or leaves unanswered (a closing question), which the run summary
   counts. Samples the source skipped are stored as rows with an `error`, so a
   later call fills `source.skipped` again and the run can report the count.
2. `build_dataset`: those rows without the bad ones (those the source skipped, and those the
   template cannot render: ablate.data.template_check), as a `datasets.Dataset` whose
   transform (`with_transform`) runs the template on the rows read: in the Trainer's
   DataLoader (its workers when `dataloader_workers` > 0), a batch at a time.

Rows read from the result: id, image, input_ids, labels, length, modality_length, opens_with_gpt,
ends_with_human, data_type, meta (a JSON string) and error (None). Column reads (`dataset["image"]`, `dataset["length"]`)
tokenize nothing.

A sample that only tokenizing shows the template cannot encode (its image or every supervised
token cut off by truncation; prompt and reply merged into one token) shows when it is read:
with on_bad_sample "error" the read raises the template's DataError naming it; with "skip" it
comes back with an `error` and no tokens, and the collator leaves it out of its batch.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ablate.data.contracts import DataSource, encoded_problem
from ablate.errors import AblateError, DataError
from ablate.fingerprint import file_sha256

if TYPE_CHECKING:
    import datasets

PIPELINE_VERSION = 3  # bump when the raw columns change
COLUMNS = ("id", "image", "input_ids", "labels", "length", "modality_length", "opens_with_gpt", "ends_with_human",
           "data_type", "meta")
IMAGE_WORDS = 128  # what LLaVA's length estimate adds for an image
BATCH_ROWS = 10_000  # rows per Arrow record batch written


def default_cache_dir() -> Path:
    """$ABLATE_HOME/datasets (ABLATE_HOME defaults to ~/.cache/ablate)."""
    home = os.environ.get("ABLATE_HOME") or "~/.cache/ablate"
    return Path(home).expanduser() / "datasets"


def _raw_features():
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"),
        "image": Value("string"),
        "conversations": List({"from": Value("string"), "value": Value("string")}),
        "data_type": Value("string"),
        "meta": Value("string"),
        "length": Value("int32"),
        "modality_length": Value("int32"),
        "opens_with_gpt": Value("bool"),
        "ends_with_human": Value("bool"),
        "error": Value("string"),
    })


def _rows(source: DataSource) -> Iterator[dict[str, Any]]:
    """The source's samples as Arrow rows, then one row per sample it skipped."""
    count = 0
    for count, sample in enumerate(source, 1):
        conversations = [{"from": t["from"], "value": t["value"]} for t in sample["conversations"]]
        try:
            meta = json.dumps(sample.get("meta") or {}, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"data source {source.name!r}: sample {sample['id']!r} has a meta that is not "
                            f"JSON-serialisable ({exc}); see ablate.data.contracts") from None
        yield {
            "id": str(sample["id"]),
            "image": sample.get("image"),
            "conversations": conversations,
            "data_type": sample.get("data_type"),
            "meta": meta,
            **conversation_facts(conversations, has_image=sample.get("image") is not None),
            "error": None,
        }
    for count, (sample_id, reason) in enumerate(source.skipped, count + 1):
        yield {"id": sample_id, "image": None, "conversations": [], "data_type": None, "meta": "{}",
               **conversation_facts([], has_image=False), "error": reason}
    if not count:
        raise DataError(f"data source {source.name!r} produced no samples")


def conversation_facts(conversations: list[dict[str, str]], *, has_image: bool) -> dict[str, Any]:
    """What the samplers and the run summary read from a record's turns, as the source gave them.

    LLaVA's length estimates count the whitespace-separated words of every turn (`<image>`
    included): `length` adds 128 for an image (its `lengths`), `modality_length` is negative for a
    text-only record (its `modality_lengths`). opens_with_gpt / ends_with_human: the turns LLaVA's
    preprocessing drops (an opening reply) or leaves unanswered (a closing question).
    """
    words = sum(len(turn["value"].split()) for turn in conversations)
    roles = [turn["from"] for turn in conversations]
    return {
        "length": words + IMAGE_WORDS if has_image else words,
        "modality_length": words if has_image else -words,
        "opens_with_gpt": bool(roles) and roles[0] == "gpt",
        "ends_with_human": bool(roles) and roles[-1] == "human",
    }


def raw_dataset(source: DataSource, cache_dir: str | os.PathLike | None = None):
    """The source's samples as a memory-mapped Arrow dataset, written once per source fingerprint."""
    from datasets import Dataset
    from datasets.fingerprint import Hasher

    from ablate.fingerprint import lock

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"raw-{Hasher.hash(['ablate-raw', PIPELINE_VERSION, source.fingerprint])}.arrow"
    with lock(path.with_suffix(".lock")):  # one writer per file across ranks and study workers
        if not _intact(path):
            _write_arrow(_rows(source), path)
            _digest_file(path).write_text(file_sha256(path), encoding="utf-8")  # last: the file is whole
    return Dataset.from_file(str(path))


def _digest_file(arrow: Path) -> Path:
    return arrow.with_name(arrow.name + ".sha256")


def _intact(arrow: Path) -> bool:
    """Whether the cached Arrow file is the one written: the key covers the source, not these
    bytes, so a truncated or edited file would otherwise train on other data under the same stage
    key. A damaged one is said and written again (it is derived data); one written before digests
    were kept is written again once."""
    if not arrow.is_file():
        return False
    try:
        recorded = _digest_file(arrow).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        recorded = None
    if recorded == file_sha256(arrow):
        return True
    if recorded is not None:
        warnings.warn(f"data cache {arrow} does not match the sha256 recorded when it was written "
                      f"(truncated or changed); writing it again", stacklevel=3)
    return False


def _write_arrow(rows: Iterator[dict[str, Any]], path: Path) -> None:
    """Rows -> an Arrow stream file, a record batch at a time. datasets' from_generator
    encodes row by row through its features (about 40 s of 665K mix665k rows); pyarrow
    converts a batch of rows at once."""
    import pyarrow as pa

    schema = _raw_features().arrow_schema
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH_ROWS:
                    writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                    batch.clear()
            if batch:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _error_rows(dataset: Any) -> list[tuple[int, str]]:
    """(row, reason) of the rows that carry an error, read straight from the Arrow table."""
    import numpy as np
    import pyarrow.compute as pc

    errors = dataset.data.column("error")
    if errors.null_count == len(errors):
        return []
    rows = np.flatnonzero(pc.is_valid(errors).to_numpy(zero_copy_only=False))
    return list(zip(rows.tolist(), errors.filter(pc.is_valid(errors)).to_pylist()))


def build_dataset(
    source: DataSource,
    template: Any,
    tokenizer: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_length: int | None = None,
    on_bad_sample: str = "error",
) -> "datasets.Dataset":
    """`source`'s samples (cached as Arrow), tokenized by `template.encode` when read.

    Every sample the source skipped ends up in `source.skipped`; raises DataError when no
    sample is left. `on_bad_sample` also decides what reading a sample the template cannot
    encode does (see the module's docstring).
    """
    if on_bad_sample not in ("error", "skip"):
        raise DataError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    raw = raw_dataset(source, cache_dir)
    return lazy_dataset(raw, source, Encode(template, tokenizer, max_length, skip=on_bad_sample == "skip"))


def lazy_dataset(raw, source: DataSource, encode: "Encode"):
    """`raw` without its bad rows, encoded on read.

    Bad rows are those the source skipped and those the template cannot render
    (ablate.data.template_check); they go to `source.skipped`, in row order. Without `skip`, the
    first that the template rejects raises its DataError, as tokenizing it would have."""
    import numpy as np

    from ablate.data.template_check import render_errors

    rejected = render_errors(raw, encode.template)
    if rejected and not encode.skip:
        raise DataError(rejected[0][1])
    bad = sorted(_error_rows(raw) + rejected)
    rows = np.array([row for row, _ in bad], dtype=np.int64)
    source.skipped[:] = list(zip(raw.data.column("id").take(rows).to_pylist(), [reason for _, reason in bad]))
    if bad:
        raw = raw.select(np.setdiff1d(np.arange(len(raw)), rows))
    if len(raw) == 0:
        raise DataError(f"data source {source.name!r}: every sample was skipped ({len(source.skipped)}); "
                        f"first: {source.skipped[0][0]!r}: {source.skipped[0][1]}")
    return raw.with_transform(encode, columns=["id", "conversations", "error"], output_all_columns=True)


class Encode:
    """The dataset's transform: a batch of raw rows -> id, input_ids, labels, error.

    A class, not a closure, so DataLoader workers started with spawn can pickle it."""

    def __init__(self, template: Any, tokenizer: Any, max_length: int | None, *, skip: bool):
        self.template, self.tokenizer, self.max_length, self.skip = template, tokenizer, max_length, skip

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"id": batch["id"], "input_ids": [], "labels": [], "error": []}
        for sample_id, conversations in zip(batch["id"], batch["conversations"]):
            ids, labels, error = self.encode(sample_id, conversations)
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["error"].append(error)
        return out

    def encode(self, sample_id: str, conversations: list) -> tuple[list[int], list[int], str | None]:
        try:
            encoded = self.template.encode(conversations, self.tokenizer, sample_id=sample_id,
                                           max_length=self.max_length)
        except DataError as exc:
            if not self.skip:
                raise
            return [], [], f"tokenization: {exc}"
        if problem := encoded_problem(encoded):  # a template's bug, never a sample to skip
            name = getattr(self.template, "name", type(self.template).__name__)
            raise DataError(f"template {name!r} ({type(self.template).__module__}), sample {sample_id!r}: "
                            f"encode() {problem}")
        ids, labels = encoded
        return ids, labels, None



def modality_lengths(dataset) -> tuple[list[int], list[bool]]:
    """(LLaVA's word-count estimate, has an image) of every row of a `build_dataset` result, for
    the modality-grouped sampler; read as two Arrow columns, nothing tokenized. Whether a row has
    an image comes from its `image` column, so a text-only record of no words is not taken for one."""
    import pyarrow.compute as pc

    missing = [c for c in ("modality_length", "image") if c not in dataset.column_names]
    if missing:
        raise AblateError(f"group_by_modality_length needs the columns {missing} of ablate's data pipeline; "
                          f"this dataset has {dataset.column_names}")
    table = dataset.with_format("arrow").select_columns(["modality_length", "image"])[:]
    return pc.abs(table.column("modality_length")).to_pylist(), table.column("image").is_valid().to_pylist()


def turn_edge_counts(dataset) -> dict[str, int]:
    """How many rows of a `build_dataset` result open with a gpt turn (dropped by the template)
    and end with a human turn (kept in the text; LLaVA masks the whole record)."""
    import pyarrow.compute as pc

    table = dataset.with_format("arrow").select_columns(["opens_with_gpt", "ends_with_human"])[:]
    return {
        "opening_gpt_turns_dropped": int(pc.sum(table.column("opens_with_gpt")).as_py() or 0),
        "closing_human_turns_masked": int(pc.sum(table.column("ends_with_human")).as_py() or 0),
    }
