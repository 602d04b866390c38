"""A disk cache of judge answers, so re-runs and `ablate report` never pay for a request twice.

One JSON file per request, `<root>/<key[:2]>/<key>.json` = `{"request": ..., "reply": ...}`,
where the key is the SHA-256 of the request's canonical JSON (judge model, messages — context,
question, both answers, rule prompt — temperature and max_tokens). The endpoint is not part of
the key: the same model behind another proxy answers the same request.

Writes go to a temporary file renamed into place (a reader never sees half an entry), under
`ablate.fingerprint.lock` so two processes do not race on one entry. An entry that cannot be
read back — not JSON, not an object, a different request (a collision or an edit), no string
reply — is named in a `JudgeCacheWarning` and asked again, its file then overwritten: the cache
is only a memo of the judge, so one extra request is cheaper than stopping a report on it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ablate.fingerprint import content_hash, lock
from ablate.paths import write_text_whole


class JudgeCacheWarning(UserWarning):
    pass


class JudgeCache:
    def __init__(self, root: Path):
        self.root = root

    def path(self, request: dict[str, Any]) -> Path:
        key = content_hash(request, length=64)
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: dict[str, Any]) -> str | None:
        """The cached reply to `request`, or None (absent, or corrupted: warned about)."""
        path = self.path(request)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        reply, problem = _read(raw, request)
        if problem is None:
            return reply
        warnings.warn(f"judge cache entry {path} is corrupted ({problem}); asking the judge again", JudgeCacheWarning,
                      stacklevel=2)
        return None

    def put(self, request: dict[str, Any], reply: str) -> None:
        path = self.path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        with lock(self.root / ".lock"):
            write_text_whole(path, json.dumps({"request": request, "reply": reply}, sort_keys=True))


def cached_reply(cache: JudgeCache | None, endpoint: Any, request: dict[str, Any]) -> str:
    """`endpoint`'s reply to `request` (a ChatEndpoint), from `cache` when it holds this exact
    request, and stored there when it was asked."""
    cached = cache.get(request) if cache is not None else None
    if cached is not None:
        return cached
    reply = endpoint.reply(request)
    if cache is not None:
        cache.put(request, reply)
    return reply


def _read(raw: bytes, request: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the entry's reply, None), or (None, what is wrong with it)."""
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(entry, dict):
        return None, f"a JSON {type(entry).__name__}, not an object"
    if entry.get("request") != request:
        return None, "it holds a different request"
    if not isinstance(entry.get("reply"), str):
        return None, "no text reply"
    return entry["reply"], None
