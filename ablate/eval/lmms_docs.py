"""Helpers that lmms-eval task YAMLs name (`!function ablate.eval.lmms_docs.<name>`), for tasks
whose documents are local JSON files (`dataset_path: json`, `dataset_kwargs: {data_files: ...}`).

    process_docs: !function ablate.eval.lmms_docs.images_from_paths

turns each document's `image` (a file path) into an image, as the hub data sets' image columns
are, so that a task's own code (`doc["image"].convert("RGB")`) runs unchanged on local data.
Paths are read as `datasets` reads them: relative to the working folder; write absolute ones.
"""

from __future__ import annotations


def images_from_paths(dataset):
    """The data set with its `image` column of file paths cast to `datasets.Image()`."""
    import datasets

    return dataset.cast_column("image", datasets.Image())
