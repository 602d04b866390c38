"""`llava_json`: LLaVA conversation files (LLaVA-Instruct-158K, CC-595K chat.json, mix665k).

Each record: `{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value"}]}`, with
"<image>" in a human turn when the record has an image. `.json` files hold a list of records,
`.jsonl` files one record per line. Image paths are relative to `image_root`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import Field

from ablate.config_model import NonBlank
from ablate.data.contracts import DataSource
from ablate.data.sources.base import (
    BadSample,
    OnBadSample,
    check_conversations,
    check_on_bad_sample,
    fingerprint,
    is_text,
    iter_json_list,
    make_source,
    resolve_image,
)
from ablate.errors import DataError
from ablate.fingerprint import file_fingerprint
from ablate.registry import ComponentConfig

_STANDARD_KEYS = ("id", "image", "conversations")


class LlavaJsonConfig(ComponentConfig):
    path: NonBlank = Field(description="LLaVA-format .json (list of records) or .jsonl file")
    image_root: NonBlank | None = Field(None, description="folder image paths are relative to (default: the file's folder)")
    data_type: str | None = Field(None, description="data_type given to every sample, e.g. 'conversation'")
    data_type_field: str | None = Field(
        None, description="record field holding each sample's data_type (falls back to data_type)",
    )
    limit: int | None = Field(None, gt=0, description="keep only the first N good samples")


def data_file(path: str, *, what: str = "llava_json", field: str = "path",
              download: str = "it (LLaVA-format JSON)") -> Path:
    """The expanded data file path; DataError saying it must be downloaded when absent."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"{what}: {field} {str(file)!r} is a folder; set `{field}` to the JSON file in it")
    if not file.is_file():
        raise DataError(
            f"{what}: {field} file {str(file)!r} not found. Download {download} and set the data "
            f"block's `{field}` (stages.<name>.data.{field}, or eval.data.{field}) to its path."
        )
    return file


def build_llava_json(
    config: LlavaJsonConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error"
) -> DataSource:
    """LLaVA-format conversations from a JSON/JSONL file plus an image folder."""
    check_on_bad_sample(on_bad_sample)
    file = data_file(config.path)
    root = Path(config.image_root).expanduser() if config.image_root else file.parent
    if not root.is_dir():
        raise DataError(f"llava_json {str(file)!r}: image_root {str(root)!r} is not a folder")
    files = {str(file): file_fingerprint(file)}
    fp = fingerprint("llava_json", config.model_dump(mode="json"), files, str(root), on_bad_sample)

    def produce() -> Iterator[Any]:
        kept, images = 0, {}  # images: relative path -> checked absolute path (mix665k shares images)
        for index, record in _records(file):
            if config.limit is not None and kept >= config.limit:
                return
            try:
                sample = _to_sample(record, index, root, config, images)
            except BadSample as bad:
                yield bad
                continue
            kept += 1
            yield sample

    return make_source(file.stem, fp, produce, where=str(file), on_bad_sample=on_bad_sample, files=files)


def _records(file: Path) -> Iterator[tuple[int, Any]]:
    """(index, record) pairs; a record that is not valid JSON comes as a BadSample."""
    if file.suffix == ".jsonl":
        with file.open("rb") as handle:  # bytes: one line that is not UTF-8 is one bad sample
            for index, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    yield index, json.loads(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield index, BadSample(f"line {index + 1}", f"not UTF-8 text (byte {exc.start}: {exc.reason})")
                except json.JSONDecodeError as exc:
                    yield index, BadSample(f"line {index + 1}", f"not valid JSON ({exc.msg})")
        return
    yield from enumerate(iter_json_list(file, of=" of LLaVA records"))


def _image(root: Path, relative: Any, sample_id: str, checked: dict[str, str]) -> str:
    """`resolve_image`, once per distinct path within a pass (a path that failed is checked again)."""
    if isinstance(relative, str) and relative in checked:
        return checked[relative]
    path = resolve_image(root, relative, sample_id)
    checked[relative] = path
    return path


def _to_sample(record: Any, index: int, root: Path, config: LlavaJsonConfig,
               images: dict[str, str]) -> dict[str, Any]:
    if isinstance(record, BadSample):
        raise record
    if not isinstance(record, dict):
        raise BadSample(f"#{index}", f"record {index} is a {type(record).__name__}, not an object")
    raw_id = record.get("id")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or str(raw_id) == "" or not is_text(str(raw_id)):
        raise BadSample(f"#{index}", f"record {index} has no usable 'id' (got {raw_id!r})")
    sample_id = str(raw_id)
    has_image = record.get("image") is not None
    conversations = check_conversations(record.get("conversations"), sample_id, has_image=has_image)
    image = _image(root, record["image"], sample_id, images) if has_image else None
    data_type = config.data_type
    if config.data_type_field is not None:
        value = record.get(config.data_type_field, data_type)
        if value is None:
            raise BadSample(sample_id, f"field {config.data_type_field!r} (data_type_field) is missing")
        data_type = str(value)
    meta = {k: v for k, v in record.items() if k not in _STANDARD_KEYS}
    return {"id": sample_id, "image": image, "conversations": conversations, "data_type": data_type, "meta": meta}
