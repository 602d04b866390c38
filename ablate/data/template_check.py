"""The samples a template rejects before anything is tokenized, found before training.

Tokenizing happens as training reads (ablate.data.pipeline), but most reasons a template
rejects a sample need no tokenizer: a turn order or an image placement it cannot render, an
empty turn, a multi-turn conversation for `plain`. `template.render` finds those; one pass
over the stage's Arrow rows runs it on every sample, and the result is kept per (rows,
template) in the data cache, so a later run with the same data and template reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.errors import DataError
from ablate.paths import write_text_whole

CHECK_VERSION = 1  # bump when what is checked changes
BATCH_ROWS = 10_000


def render_errors(raw: Any, template: Any) -> list[tuple[int, str]]:
    """(row, reason) of the rows of `raw` (a dataset with id, conversations, error) that
    `template` cannot render; rows that already carry an error are left out. Cached next to
    `raw`'s Arrow file."""
    from datasets.fingerprint import Hasher

    arrow = Path(raw.cache_files[0]["filename"])
    path = arrow.with_name(f"check-{Hasher.hash([CHECK_VERSION, arrow.name, template])}.json")
    if (stored := _stored(path, len(raw))) is not None:
        return stored
    found = _scan(raw, template)
    write_text_whole(path, json.dumps(found))  # concurrent writers write the same content
    return found


def _stored(path: Path, rows: int) -> list[tuple[int, str]] | None:
    """The cached result, or None when there is none or it is not one (truncated, edited): it is
    derived data, so a damaged copy is computed again rather than trusted or fatal."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(found, list) or not all(
            isinstance(item, list) and len(item) == 2 and type(item[0]) is int and 0 <= item[0] < rows
            and isinstance(item[1], str) for item in found):
        return None
    return [(row, reason) for row, reason in found]


def _scan(raw: Any, template: Any) -> list[tuple[int, str]]:
    found = []
    rows = raw.select_columns(["id", "conversations", "error"])
    for start, batch in enumerate(rows.iter(batch_size=BATCH_ROWS)):
        for offset, (sample_id, conversations, error) in enumerate(zip(batch["id"], batch["conversations"],
                                                                         batch["error"])):
            if error is not None:
                continue
            try:
                template.render(conversations, sample_id=sample_id)
            except DataError as exc:
                found.append((start * BATCH_ROWS + offset, str(exc)))
    return found
