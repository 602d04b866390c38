"""Finished stages, stored under the content key of everything that decides their weights.

`<root>/<key>/weights.safetensors` holds the stage's trainable weights, `meta.json` what trained
them, what they were trained from (`inputs`, see `ablate.run.stage_inputs`) and the weights'
fingerprint, checked before every load: a truncated or corrupted copy is named, never loaded.

The store owns the three things that keep several processes honest:
- the per-stage lock (`filelock`), so two study workers never train the same stage at once;
- the rank broadcast, so within a torchrun job rank 0 alone decides and every rank follows;
- the search for the stored stage a new key replaced, so a run can say why it retrains.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.fingerprint import file_fingerprint, lock
from ablate.paths import write_text_whole

WEIGHTS = "weights.safetensors"
META = "meta.json"
LOCK = ".lock"


class StoredStateError(AblateError):
    """A stored file (stage weights or meta, run state) is unreadable or not what was written."""


class StageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def dir(self, key: str) -> Path:
        return self.root / key

    def is_done(self, key: str) -> bool:
        return (self.dir(key) / META).is_file() and (self.dir(key) / WEIGHTS).is_file()

    def meta(self, key: str) -> dict[str, Any]:
        """The stage's meta.json, with its weights checked against the fingerprint it records."""
        meta = read_json(self.dir(key) / META, what="stored stage meta")
        if problem := meta_problem(meta):
            raise StoredStateError(f"stored stage meta {self.dir(key) / META}: {problem} (damaged, or not written "
                                   f"by ablate); delete {self.dir(key)} to train it again, or run with --no-reuse")
        weights = self.dir(key) / WEIGHTS
        recorded = meta.get("weights_fingerprint")
        if not isinstance(recorded, str) or file_fingerprint(weights) != recorded:
            raise StoredStateError(
                f"stored stage {weights} does not match the fingerprint in its meta.json (truncated, "
                f"corrupted or written by an older ablate); delete {self.dir(key)} to train it again, "
                f"or run with --no-reuse"
            )
        return meta

    @contextlib.contextmanager
    def claim(self, key: str, usable: Callable[[dict[str, Any]], bool]) -> Iterator[dict[str, Any] | None]:
        """Hold `key`'s lock for the body (rank 0) and yield its stored meta when `usable(meta)`,
        else None. Every rank of a torchrun job gets rank 0's answer."""
        from ablate.ranks import ranks

        state = ranks()
        held = self._locked(key) if state.is_main_process else contextlib.nullcontext()
        with held:
            meta = None
            if state.is_main_process and self.is_done(key):
                meta = self.meta(key)
                meta = meta if usable(meta) else None
            yield broadcast(meta)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """The stage's lock. A stages/ entry that is a file, or a lock that is a folder, stops
        mkdir or open: named, not a traceback."""
        try:
            held = lock(self.dir(key) / LOCK)
            held.acquire()
        except OSError as err:
            blocker = next((p for p in (self.root, self.dir(key)) if p.exists() and not p.is_dir()), err.filename)
            raise StoredStateError(f"stored stage {self.dir(key)} cannot be used: {blocker} ({err.strerror}); "
                                   f"delete {blocker} to train the stage again") from None
        try:
            yield
        finally:
            held.release()

    def save(self, key: str, weights: dict, meta: dict[str, Any]) -> None:
        """Write weights then meta (meta last: a stage without meta.json is not done)."""
        from safetensors.torch import save_file

        folder = self.dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (WEIGHTS + ".tmp")
        save_file(weights, str(tmp), metadata={"format": "pt"})
        # A stage trained again (--no-reuse, a missing epoch curve) replaces stored weights: drop
        # the old meta first, or a kill before the new one is written leaves old meta over new
        # weights, which every later run would refuse as a corrupted copy.
        (folder / META).unlink(missing_ok=True)
        os.replace(tmp, folder / WEIGHTS)
        meta = {**meta, "weights_fingerprint": file_fingerprint(folder / WEIGHTS)}
        write_json(folder / META, meta)

    def load_into(self, key: str, model) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.dir(key) / WEIGHTS
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise StoredStateError(f"stored stage {path} cannot be read ({err}); delete {self.dir(key)} "
                                   f"to train it again") from None
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise StoredStateError(f"stored stage {path} does not fit this model: unexpected keys "
                                   f"{result.unexpected_keys[:5]}")

    def replaced(self, config_key: str) -> dict[str, Any] | None:
        """The newest stored stage trained with the same configuration (`inputs.config`) under
        another key: what a new key replaces, to explain why it was not reused."""
        if not self.root.is_dir():
            return None
        found = []
        for meta_path in self.root.glob(f"*/{META}"):
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a corrupted neighbour is reported when its own key is asked for
            if isinstance(meta, dict) and isinstance(meta.get("inputs"), dict) \
                    and meta["inputs"].get("config") == config_key:
                found.append((meta_path.stat().st_mtime_ns, meta))
        return max(found, key=lambda item: item[0])[1] if found else None


# What a run reads from a stored stage's meta.json (the fingerprint covers the weights, not these).
_NUMBER = (int, float)
META_FIELDS: dict[str, tuple[type, ...]] = {
    "stage": (str,), "run_id": (str, type(None)), "steps": (int,), "seconds": _NUMBER,
    "metrics": (dict,), "inputs": (dict,), "turn_edges": (dict,), "epoch_eval": (dict,), "skipped_samples": (int,),
}


def meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with a stored stage's meta.json fields, or None."""
    for name, types in META_FIELDS.items():
        value = meta.get(name)
        if name in meta and (isinstance(value, bool) or not isinstance(value, types)):
            return f"{name!r} is {type(value).__name__} {_short(value)}, not {' or '.join(_json_name(t) for t in types)}"
    numbers = {**meta.get("metrics", {}), **meta.get("turn_edges", {})}
    if bad := [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, _NUMBER)]:
        return f"metric {bad[0]!r} is not a number"
    curves = meta.get("epoch_eval", {}).values()
    if not all(isinstance(c, dict) and all(isinstance(m, dict) for m in c.values()) for c in curves):
        return "'epoch_eval' is not {curve: {epoch: {metric: value}}}"
    return None


def _json_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", dict: "an object", type(None): "null"}[kind]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (itself without torchrun)."""
    from ablate.ranks import ranks

    if ranks().num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def read_json(path: Path, *, what: str) -> dict[str, Any]:
    """A JSON object written by ablate; StoredStateError naming the file when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise StoredStateError(f"{what} {path} cannot be read ({type(err).__name__}: {err}); delete it "
                               f"to start that part again") from None
    if not isinstance(data, dict):
        raise StoredStateError(f"{what} {path} is not a JSON object; delete it to start that part again")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file, so a killed process never leaves half a file."""
    write_text_whole(path, json.dumps(data, indent=2, default=str))
