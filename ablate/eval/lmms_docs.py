"""Functions that lmms-eval task YAMLs name (`!function ablate.eval.lmms_docs.<name>`).

For tasks whose documents are local JSON files (`dataset_path: json`, `dataset_kwargs:
{data_files: ...}`):

    process_docs: !function ablate.eval.lmms_docs.images_from_paths

turns each document's `image` (a file path, or a list of them) into an image (a list of them),
as the hub data sets' image columns are, so that a task's own code (`doc["image"].convert("RGB")`,
SEED-Bench's `[image.convert("RGB") for image in doc["image"]]`) runs unchanged on local data.
Paths are read as `datasets` reads them: relative to the working folder; write absolute ones.

For tasks written from an ablate eval section (`ablate.eval.lmms_eval_task`, documents
{"id", "question", "image", "answer", "category", "meta", "evaluator"}):

    doc_to_visual: !function ablate.eval.lmms_docs.doc_to_visual      # [the image] or []
    doc_to_text: !function ablate.eval.lmms_docs.doc_to_text          # the question
    process_results: !function ablate.eval.lmms_docs.process_results
    metric_list: [{metric: accuracy, aggregation: !function ablate.eval.lmms_docs.aggregate}, ...]

`process_results` judges the answer with the document's evaluator (ablate's registered one,
built from its config) and hands the judged record to every metric that evaluator reports for
it; `aggregate` scores a metric's records with that evaluator. So a task's `accuracy`,
`accuracy/<category>` (exact_match) or ScienceQA columns are exactly what ablate's own
evaluation reports for the same answers.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ablate.errors import DataError


def images_from_paths(dataset):
    """The data set with its `image` column of file paths cast to `datasets.Image()`, or, where
    each document holds a list of paths (as SEED-Bench's hub documents hold a list of images), to
    a list of them."""
    import datasets

    listed = getattr(datasets, "List", datasets.Sequence)  # datasets 4 renamed Sequence to List
    if isinstance(dataset.features.get("image"), (listed, datasets.Sequence)):
        return dataset.cast_column("image", listed(datasets.Image()))
    return dataset.cast_column("image", datasets.Image())


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """[the document's image as RGB] or [] when it has none. `image` is an absolute file path or
    a `data:` URI holding the file's bytes in base64."""
    image = doc.get("image")
    if not image:
        return []
    if not image.startswith("data:"):
        from ablate.data.images import load_image

        return [load_image(image, doc["id"])]
    return [_embedded_image(image, doc["id"])]


def _embedded_image(uri: str, doc_id: str) -> Any:
    import base64
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2], validate=True))) as image:
            image.load()
            return image.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"document {doc_id!r}: its embedded image cannot be read ({exc})") from None


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The document's question, as ablate's evaluation asks it (lmms-eval puts the image first)."""
    return doc["question"]


def ablate_record(doc: dict[str, Any], prediction: str) -> dict[str, Any]:
    """The record ablate's evaluators judge: {"id", "prompt", "prediction", "answer", "meta"}."""
    return {"id": doc["id"], "prompt": doc["question"], "prediction": prediction, "answer": doc["answer"],
            "meta": json.loads(doc["meta"])}


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, dict[str, Any]]:
    """{metric: {"metric", "evaluator", "record"}} for each metric the judged answer counts toward
    (what the evaluator reports for it alone: accuracy, its category's, ...)."""
    evaluator = evaluator_of(doc["evaluator"])
    judged = evaluator.judge(ablate_record(doc, str(results[0]) if results else ""))
    return {name: {"metric": name, "evaluator": doc["evaluator"], "record": judged} for name in evaluator.score([judged])}


def aggregate(items: list[dict[str, Any]]) -> float:
    """One metric over the records that count toward it, as the evaluator scores them."""
    evaluator = evaluator_of(items[0]["evaluator"])
    return float(evaluator.score([item["record"] for item in items])[items[0]["metric"]])


@functools.lru_cache(maxsize=16)
def evaluator_of(config_json: str):
    """The registered evaluator built from its config (JSON text, as the documents hold it)."""
    from ablate.registry import registries

    config = json.loads(config_json)
    return registries().evaluator.get(config["type"]).build(config)
