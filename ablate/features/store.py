"""An append-only on-disk table of fixed-size arrays, shared by several processes.

Files in the store's folder:
    rows.bin      row i at byte offset i * row_bytes, read through numpy.memmap
    index.jsonl   {"generation": id}, then one line per row, {"key": [...], "row": i, "crc": c}, in
                  row order; c is the CRC-32 of the row's bytes, checked on every read
    meta.json     row shape and dtype, checked when the store is opened
    lock          filelock held while a process appends

Writers take the lock, write their rows' bytes, then append their index lines. Readers need no
lock: an index line is only written after its row's bytes, and a line without its final newline
(a writer killed mid-write) is ignored, so every row a reader sees in the index is complete.
A damaged store (an index line that is not one, a rows.bin shorter than its index, a row whose
bytes no longer match their CRC) is a StoreDamagedError naming the file: never read as features.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any, Hashable, Iterator, Sequence

import numpy as np

from ablate.errors import AblateError
from ablate.paths import write_text_whole

FORMAT_VERSION = 1
ROWS, INDEX, META, LOCK = "rows.bin", "index.jsonl", "meta.json", "lock"


class StoreDamagedError(AblateError):
    """A file of the store is not what a writer wrote (truncated, edited, bytes flipped)."""


class RowStore:
    def __init__(
        self, directory: str | os.PathLike, row_shape: Sequence[int], dtype: Any, meta: dict[str, Any] | None = None,
        *, writes: bool = True,
    ):
        """`writes=False` opens the store read-only: it creates no file (not even its lock or meta)."""
        self.directory = Path(directory)
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        self._index: dict[tuple, int] = {}
        self._crcs: list[int | None] = []  # per row; None for rows written before rows had one
        self._count = 0  # index lines parsed = rows known
        self._offset = 0  # bytes of index.jsonl parsed
        self._map: np.memmap | None = None
        self._generation: str | None = None  # id in the index's first line; a rebuilt cache has a new one
        self.writes = writes
        self._check_meta(meta or {})

    # --- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        self.refresh()
        return self._count

    def refresh(self) -> None:
        """Read index lines other processes appended since the last call."""
        try:
            with (self.directory / INDEX).open("rb") as fh:
                head = fh.readline()
                generation = self._generation_of(head) if head.endswith(b"\n") else None
                if generation != self._generation:  # new, or deleted and rebuilt since we read it
                    self._forget(generation, offset=len(head) if generation else 0)
                if generation is None:
                    return
                fh.seek(self._offset)
                tail = fh.read()
        except FileNotFoundError:
            self._forget(None, offset=0)
            return
        complete = tail[: tail.rfind(b"\n") + 1]
        for line in complete.splitlines():
            key, crc = self._entry(line)
            self._index[key] = self._count
            self._crcs.append(crc)
            self._count += 1
        self._offset += len(complete)

    def _generation_of(self, head: bytes) -> str:
        try:
            generation = json.loads(head)["generation"]
        except (ValueError, TypeError, KeyError):
            generation = None
        if not isinstance(generation, str):
            raise self._damaged(INDEX, "its first line is not the store's {\"generation\": id}")
        return generation

    def _entry(self, line: bytes) -> tuple[tuple, int | None]:
        """(key, crc) of one complete index line; rows are appended in order, so line n is row n."""
        try:
            entry = json.loads(line)
            ok = isinstance(entry, dict) and isinstance(entry.get("key"), list) and entry.get("row") == self._count \
                and isinstance(entry.get("crc", 0), int)
        except ValueError:
            ok = False
        if not ok:
            raise self._damaged(INDEX, f"the line for row {self._count} is not {{key, row: {self._count}, crc}}")
        return _key(entry["key"]), entry.get("crc")

    def _damaged(self, name: str, why: str) -> StoreDamagedError:
        return StoreDamagedError(f"feature cache {self.directory / name} is damaged: {why}; delete "
                                 f"{self.directory} to rebuild it")

    def _forget(self, generation: str | None, offset: int) -> None:
        self._index, self._crcs, self._count, self._offset, self._map = {}, [], 0, offset, None
        self._generation = generation

    def rows(self, keys: Sequence[Hashable]) -> list[int | None]:
        """Row of each key, None where it is not stored (yet)."""
        found = [self._index.get(_key(k)) for k in keys]
        if any(r is None for r in found):
            self.refresh()
            found = [self._index.get(_key(k)) for k in keys]
        return found

    def read(self, rows: Sequence[int]) -> np.ndarray:
        """A copy of the given rows, shape [len(rows), *row_shape]."""
        wanted = np.asarray(rows, dtype=np.int64)
        if wanted.size and (self._map is None or wanted.max() >= self._map.shape[0]):
            self._remap()
        if not wanted.size:
            return np.empty((0, *self.row_shape), self.dtype)
        data = np.asarray(self._map[wanted])
        self._check_crcs(wanted, data)
        return data

    def _check_crcs(self, rows: np.ndarray, data: np.ndarray) -> None:
        """Features whose bytes changed on disk would train silently on noise: name the file."""
        for row, values in zip(rows.tolist(), data):
            want = self._crcs[row]
            if want is not None and zlib.crc32(values.tobytes()) != want:
                raise self._damaged(ROWS, f"row {row} no longer matches the CRC-32 its index recorded")

    def _remap(self) -> None:
        self.refresh()
        # Only rows the index knows are complete; the file may hold a dead writer's extra bytes.
        path, needed = self.directory / ROWS, self._count * self.row_bytes
        size = path.stat().st_size if path.is_file() else None
        if size is None or size < needed:
            have = "is missing" if size is None else f"has {size:,} bytes"
            raise self._damaged(ROWS, f"it {have}, but its index lists {self._count} rows ({needed:,} bytes)")
        self._map = np.memmap(path, dtype=self.dtype, mode="r", shape=(self._count, *self.row_shape))

    # --- writing ---------------------------------------------------------------------------------

    def add(self, items: dict[Hashable, np.ndarray]) -> dict[Hashable, int]:
        """Store each key's array unless another process stored that key first; returns every key's row."""
        with self._locked():
            self._write_meta()
            self.refresh()
            self._drop_partial_line()
            if self._generation is None:
                self._start_index()
            new = [k for k in items if _key(k) not in self._index]
            if new:
                data = np.stack([np.asarray(items[k], dtype=self.dtype).reshape(self.row_shape) for k in new])
                first = self._count
                with _open_rw(self.directory / ROWS) as fh:
                    fh.seek(first * self.row_bytes)
                    fh.write(np.ascontiguousarray(data).tobytes())
                    fh.flush()
                lines = "".join(json.dumps({"key": list(_key(k)), "row": first + i, "crc": zlib.crc32(row.tobytes())})
                                + "\n" for i, (k, row) in enumerate(zip(new, data)))
                with (self.directory / INDEX).open("ab") as fh:
                    fh.write(lines.encode())
                    fh.flush()
                self.refresh()
        return {k: self._index[_key(k)] for k in items}

    def _start_index(self) -> None:
        import uuid

        with (self.directory / INDEX).open("wb") as fh:
            fh.write(json.dumps({"generation": uuid.uuid4().hex}).encode() + b"\n")
        self.refresh()

    def _drop_partial_line(self) -> None:
        """Cut a half-written index line left by a killed writer (we hold the lock: nobody is writing)."""
        path = self.directory / INDEX
        if path.is_file() and path.stat().st_size > self._offset:
            os.truncate(path, self._offset)

    def _write_meta(self) -> bool:
        """Write meta.json if there is none (call under the lock); True if written."""
        path = self.directory / META
        if path.is_file():
            return False
        write_text_whole(path, json.dumps(self._meta, indent=2, sort_keys=True))  # a kill leaves none, not half
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from ablate.fingerprint import lock

        self.directory.mkdir(parents=True, exist_ok=True)  # again: someone may have deleted the cache
        with lock(self.directory / LOCK):
            yield

    def _check_meta(self, extra: dict[str, Any]) -> None:
        self._meta = {"format": FORMAT_VERSION, "row_shape": list(self.row_shape), "dtype": self.dtype.name, **extra}
        if not self.writes:
            if not (self.directory / META).is_file():
                return  # nothing stored yet: a reader finds no rows
        else:
            with self._locked():
                if self._write_meta():
                    return
        found = self._stored_meta()
        differs = {k: (found.get(k), v) for k, v in self._meta.items() if found.get(k) != v}
        if differs:
            detail = ", ".join(f"{k}: stored {a!r}, expected {b!r}" for k, (a, b) in differs.items())
            raise AblateError(f"feature cache {self.directory} was written for different features ({detail}); "
                              f"delete that folder to rebuild it")

    def _stored_meta(self) -> dict[str, Any]:
        try:
            found = json.loads((self.directory / META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise self._damaged(META, f"it cannot be read ({type(err).__name__})") from None
        if not isinstance(found, dict):
            raise self._damaged(META, "it is not a JSON object")
        return found

    # --- pickling (DataLoader workers open their own memory map) -------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_map"] = None
        return state


def _key(key: Any) -> tuple:
    return tuple(key) if isinstance(key, (list, tuple)) else (key,)


def _open_rw(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return os.fdopen(fd, "r+b")
