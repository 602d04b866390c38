"""A DataSource -> a tokenized HF `datasets.Dataset` (Arrow on disk, cached by fingerprint).

Two cached steps, both HF datasets' own caching:
  1. `Dataset.from_generator(..., fingerprint=<source fingerprint>)` writes the samples to
     Arrow once per source fingerprint; a later call with the same fingerprint reads them back
     without iterating the source.
  2. `.map(encode)` with a fingerprint of (samples, template, tokenizer, max_length) writes the
     tokenized columns to a cache file beside them; a later call loads that file.
Bad samples the source skipped are stored as rows with an `error` and dropped at the end, so
`source.skipped` is filled in again on a cache hit and the run can report the count.

Columns of the result: id, image (str or None), input_ids, labels, length, data_type,
meta (a JSON string), and what `conversation_facts` reads from the record's turns: words (LLaVA's
length estimate for `group_by_modality_length`), opens_with_gpt, ends_with_human.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ablate.data.contracts import DataSource
from ablate.errors import AblateError, DataError

PIPELINE_VERSION = 2  # bump when the columns or the encoding step change
COLUMNS = ("id", "image", "input_ids", "labels", "length", "words", "opens_with_gpt", "ends_with_human",
           "data_type", "meta")


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
        "error": Value("string"),
    })


def _rows(source: DataSource) -> Iterator[dict[str, Any]]:
    """The source's samples as Arrow rows, then one row per sample it skipped."""
    count = 0
    for count, sample in enumerate(source, 1):
        yield {
            "id": str(sample["id"]),
            "image": sample.get("image"),
            "conversations": [{"from": t["from"], "value": t["value"]} for t in sample["conversations"]],
            "data_type": sample.get("data_type"),
            "meta": json.dumps(sample.get("meta") or {}, sort_keys=True),
            "error": None,
        }
    for count, (sample_id, reason) in enumerate(source.skipped, count + 1):
        yield {"id": sample_id, "image": None, "conversations": [], "data_type": None, "meta": "{}", "error": reason}
    if not count:  # datasets would fail on an empty split with its own message
        raise DataError(f"data source {source.name!r} produced no samples")


def conversation_facts(conversations: list[dict[str, str]]) -> dict[str, Any]:
    """What the sampler and the run summary read from a record's turns, as the source gave them.

    words: LLaVA's length estimate for grouping by modality, the whitespace-separated words of
    every turn (`<image>` included; LLaVA's `modality_lengths`, whose sign is the `image` column
    here). opens_with_gpt / ends_with_human: the turns LLaVA's preprocessing drops (an opening
    reply) or leaves unanswered (a closing question), which the templates treat the same way.
    """
    roles = [turn["from"] for turn in conversations]
    return {
        "words": sum(len(turn["value"].split()) for turn in conversations),
        "opens_with_gpt": bool(roles) and roles[0] == "gpt",
        "ends_with_human": bool(roles) and roles[-1] == "human",
    }


def _encode(row: dict[str, Any], *, template: Any, tokenizer: Any, max_length: int | None, skip: bool) -> dict[str, Any]:
    empty = {"input_ids": [], "labels": [], "length": 0, **conversation_facts([])}
    if row["error"] is None:
        try:
            ids, labels = template.encode(row["conversations"], tokenizer, sample_id=row["id"], max_length=max_length)
            return {"input_ids": ids, "labels": labels, "length": len(ids), **conversation_facts(row["conversations"]),
                    "error": None}
        except DataError as exc:
            if not skip:
                raise
            return {**empty, "error": f"tokenization: {exc}"}
    return {**empty, "error": row["error"]}


def _errors(dataset: Any) -> list[tuple[str, str]]:
    """(id, reason) of the rows that carry an error, read straight from the Arrow table."""
    import pyarrow.compute as pc

    errors = dataset.data.column("error")
    if errors.null_count == len(errors):
        return []
    bad = pc.is_valid(errors)
    return list(zip(dataset.data.column("id").filter(bad).to_pylist(), errors.filter(bad).to_pylist()))


def build_dataset(
    source: DataSource,
    template: Any,
    tokenizer: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    max_length: int | None = None,
    on_bad_sample: str = "error",
    shards: int = 1,
) -> "datasets.Dataset":  # noqa: F821
    """Tokenize `source` with `template.encode` into a cached Arrow-backed Dataset.

    `on_bad_sample="skip"` drops samples the template cannot encode (e.g. truncation cuts off
    the image) instead of raising; every skipped sample, from the source or the template,
    ends up in `source.skipped`. Raises DataError when no sample is left. With `shards`, the
    result is read from that many tokenized shards (see `tokenize_shard`), made where missing.
    """
    raw = raw_dataset(source, cache_dir)
    return tokenized_dataset(raw, source, template, tokenizer, num_proc=num_proc, max_length=max_length,
                             on_bad_sample=on_bad_sample, shards=shards)


def raw_dataset(source: DataSource, cache_dir: str | os.PathLike | None = None):
    """The source's samples as an Arrow dataset, written once per source fingerprint."""
    from datasets import Dataset
    from datasets.exceptions import DatasetGenerationError
    from datasets.fingerprint import Hasher

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    raw_fp = Hasher.hash(["ablate-raw", PIPELINE_VERSION, source.fingerprint])
    try:
        raw = Dataset.from_generator(
            _rows, gen_kwargs={"source": source}, features=_raw_features(), cache_dir=str(cache), fingerprint=raw_fp,
        )
    except DatasetGenerationError as exc:
        if isinstance(exc.__cause__, AblateError):  # a bad sample or file, raised inside the generator
            raise exc.__cause__ from None
        raise
    if len(raw) == 0:
        raise DataError(f"data source {source.name!r} produced no samples")
    return raw


def tokenize_shard(raw, template: Any, tokenizer: Any, *, index: int, shards: int, num_proc: int | None = None,
                   max_length: int | None = None, on_bad_sample: str = "error", name: str = "data"):
    """Tokenize the `index`-th of `shards` contiguous shards of `raw` into HF datasets' cache.

    Under torchrun each rank tokenizes its own shard at the same time; then every rank reads all
    of them (`tokenized_dataset(..., shards=N)`, cache hits), in order: the same rows as one
    process tokenizing everything.
    """
    from datasets import Features, List, Value
    from datasets.fingerprint import Hasher

    if on_bad_sample not in ("error", "skip"):
        raise DataError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
    part = raw if shards == 1 else raw.shard(shards, index, contiguous=True)
    features = Features({
        **{k: v for k, v in raw.features.items() if k not in ("conversations", "error")},
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "length": Value("int32"),
        "words": Value("int32"),
        "opens_with_gpt": Value("bool"),
        "ends_with_human": Value("bool"),
        "error": Value("string"),
    })
    skip = on_bad_sample == "skip"
    shard_id = [] if shards == 1 else ["shard", index, shards]
    return part.map(
        _encode,
        fn_kwargs={"template": template, "tokenizer": tokenizer, "max_length": max_length, "skip": skip},
        remove_columns=["conversations"],
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        new_fingerprint=Hasher.hash([raw._fingerprint, "encode", PIPELINE_VERSION, template, tokenizer, max_length,
                                     skip, *shard_id]),
        desc=f"tokenizing {name}" + (f" (shard {index + 1}/{shards})" if shards > 1 else ""),
    )


def tokenized_dataset(raw, source: DataSource, template: Any, tokenizer: Any, *, num_proc: int | None = None,
                      max_length: int | None = None, on_bad_sample: str = "error", shards: int = 1):
    """All `shards` tokenized shards of `raw`, concatenated, with the bad rows moved to `source.skipped`."""
    from datasets import concatenate_datasets

    parts = [tokenize_shard(raw, template, tokenizer, index=i, shards=shards, num_proc=num_proc,
                            max_length=max_length, on_bad_sample=on_bad_sample, name=source.name)
             for i in range(shards)]
    tokenized = parts[0] if shards == 1 else concatenate_datasets(parts)
    source.skipped[:] = _errors(tokenized)
    if source.skipped:
        tokenized = tokenized.filter(lambda error: error is None, input_columns="error")
    if len(tokenized) == 0:
        raise DataError(f"data source {source.name!r}: every sample was skipped ({len(source.skipped)}); "
                        f"first: {source.skipped[0][0]!r}: {source.skipped[0][1]}")
    return tokenized.select_columns(list(COLUMNS))


def modality_lengths(dataset) -> tuple[list[int], list[bool]]:
    """(LLaVA's length estimate, has an image) of every row of a `build_dataset` result, for
    the modality-grouped sampler; read as two Arrow columns, not row by row."""
    missing = [c for c in ("words", "image") if c not in dataset.column_names]
    if missing:
        raise AblateError(f"group_by_modality_length needs the columns {missing} of ablate's data pipeline; "
                          f"this dataset has {dataset.column_names}")
    table = dataset.select_columns(["words", "image"]).with_format("arrow")[:]
    return table.column("words").to_pylist(), table.column("image").is_valid().to_pylist()


def turn_edge_counts(dataset) -> dict[str, int]:
    """How many rows of a `build_dataset` result open with a gpt turn (dropped by the template)
    and end with a human turn (kept in the text, masked: nothing answers it)."""
    import pyarrow.compute as pc

    table = dataset.select_columns(["opens_with_gpt", "ends_with_human"]).with_format("arrow")[:]
    return {
        "opening_gpt_turns_dropped": int(pc.sum(table.column("opens_with_gpt")).as_py() or 0),
        "closing_human_turns_masked": int(pc.sum(table.column("ends_with_human")).as_py() or 0),
    }
