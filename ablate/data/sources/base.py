"""Helpers every data source shares: fingerprints, conversation checks, bad-sample policy."""

from __future__ import annotations

import codecs
import json
from pathlib import Path, PurePath
from typing import Any, Callable, Iterable, Iterator, Literal

from ablate.components.contracts import IMAGE_TOKEN
from ablate.data.contracts import DataSource
from ablate.errors import DataError
from ablate.fingerprint import content_hash

OnBadSample = Literal["error", "skip"]
ROLES = ("human", "gpt")


class BadSample(Exception):
    """One sample is unusable; the source turns it into a DataError or a skip record."""

    def __init__(self, sample_id: str, reason: str):
        super().__init__(reason)
        self.sample_id, self.reason = sample_id, reason


def fingerprint(*parts: Any) -> str:
    """A stable hex digest of JSON-serialisable parts (what identifies a source's samples)."""
    return content_hash(parts, length=32)


def check_on_bad_sample(value: str) -> OnBadSample:
    if value not in ("error", "skip"):
        raise DataError(f"on_bad_sample must be 'error' or 'skip', got {value!r}")
    return value  # type: ignore[return-value]


def make_source(
    name: str,
    fp: str,
    produce: Callable[[], Iterable[dict[str, Any]]],
    *,
    where: str,
    on_bad_sample: OnBadSample,
    files: dict[str, str] | None = None,
) -> DataSource:
    """A DataSource over `produce()`, which yields samples or raises/yields `BadSample`s.

    `produce` may *yield* a BadSample (to continue after it) instead of raising. Each new
    iteration starts a fresh `skipped` list, so the count is that of the latest pass.
    """
    source = DataSource(name=name, fingerprint=fp, iter_samples=lambda: iter(()), files=dict(files or {}))

    def iter_samples() -> Iterator[dict[str, Any]]:
        source.skipped.clear()
        kept = 0
        for item in produce():
            if isinstance(item, BadSample):
                if on_bad_sample == "skip":
                    source.skipped.append((item.sample_id, item.reason))
                    continue
                raise DataError(f"{where}: sample {item.sample_id!r}: {item.reason}")
            kept += 1
            yield item
        if not kept:
            raise all_skipped_error(where, source.skipped) if source.skipped else DataError(f"{where}: has no samples")

    source.iter_samples = iter_samples
    return source


def check_unique_ids(samples: list[dict[str, Any]], source: DataSource, what: str) -> None:
    """Evaluated samples are matched by id (predictions, per-item scores, a study's paired
    bootstrap): two samples with one id would silently count as one item. Training data may
    repeat ids (LLaVA's instruction sets do: one id per image), so only eval data is checked."""
    first: dict[str, int] = {}
    for index, sample in enumerate(samples):
        sample_id = str(sample["id"])
        if sample_id in first:
            where = ", ".join(source.files) or source.name
            raise DataError(f"{what} ({where}): sample id {sample_id!r} is used by samples {first[sample_id]} and "
                            f"{index}; evaluated samples are matched by id, so each needs its own")
        first[sample_id] = index


def all_skipped_error(where: str, skipped: list[tuple[str, str]]) -> DataError:
    """on_bad_sample: skip left nothing: almost always a wrong path or format, not bad luck."""
    first = "; ".join(f"{sid!r}: {reason}" for sid, reason in skipped[:3])
    return DataError(f"{where}: every sample was skipped ({len(skipped)} of {len(skipped)}, on_bad_sample: skip); "
                     f"first: {first}")


def check_conversations(conversations: Any, sample_id: str, *, has_image: bool) -> list[dict[str, str]]:
    """Validate LLaVA conversation turns; returns them as plain {from, value} dicts, all kept.

    Turns alternate human/gpt. As in LLaVA's preprocessing, the first turn may be a gpt turn
    (vicuna_v1 drops it) and the last may be a human turn (left unanswered: vicuna_v1 masks it
    like every human turn); at least one gpt turn must answer a human turn. With an
    image, "<image>" must appear exactly once, in a human turn; without one it must not appear
    at all.
    """
    if not isinstance(conversations, list) or not conversations:
        raise BadSample(sample_id, "'conversations' must be a non-empty list of {from, value} turns")
    turns = []
    dropped = 1 if isinstance(conversations[0], dict) and conversations[0].get("from") == "gpt" else 0
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str) or "from" not in turn:
            raise BadSample(sample_id, f"turn {i} is not a {{from, value}} object with a string value")
        if not is_text(turn["value"]):
            raise BadSample(sample_id, f"turn {i} holds a lone surrogate escape (e.g. \\ud800), which is not text")
        expected = ROLES[(i + dropped) % 2]
        if turn["from"] != expected:
            raise BadSample(
                sample_id,
                f"conversation does not alternate human/gpt starting with human (after an optional opening "
                f"gpt turn): turn {i} is {turn['from']!r}, expected {expected!r}",
            )
        turns.append({"from": turn["from"], "value": turn["value"]})
    if not any(t["from"] == "gpt" for t in turns[dropped:]):
        raise BadSample(sample_id, "no gpt turn answers a human turn (nothing to learn)")
    in_gpt = sum(t["value"].count(IMAGE_TOKEN) for t in turns if t["from"] == "gpt")
    in_human = sum(t["value"].count(IMAGE_TOKEN) for t in turns if t["from"] == "human")
    if in_gpt:
        raise BadSample(sample_id, f"{IMAGE_TOKEN} appears in a gpt turn")
    if has_image and in_human != 1:
        what = "is missing from the human turns" if in_human == 0 else f"appears {in_human} times"
        raise BadSample(sample_id, f"the sample has an image but {IMAGE_TOKEN} {what} (expected exactly once)")
    if not has_image and in_human:
        raise BadSample(sample_id, f"{IMAGE_TOKEN} appears but the sample has no image")
    return turns


def is_text(value: str) -> bool:
    """Whether `value` encodes as UTF-8. JSON's \\ud800 escape decodes to a lone surrogate, which
    no UTF-8 writer (the Arrow cache, predictions.jsonl) accepts: a traceback far from the file."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve_image(root: Path, relative: Any, sample_id: str) -> str:
    """`root/relative` as an absolute path; the path must stay inside root and exist.

    The check is lexical (no symlink resolution) so data sets whose folders are symlinks
    into other disks keep working.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise BadSample(sample_id, f"'image' must be a non-empty string path, got {relative!r}")
    pure = PurePath(relative)
    if pure.is_absolute() or pure.anchor or ".." in pure.parts:
        raise BadSample(sample_id, f"image path {relative!r} escapes the image root {str(root)!r}")
    path = root / pure
    if not path.is_file():
        raise BadSample(sample_id, f"image file not found: {path}")
    return str(path)


def read_json_file(file: Path) -> Any:
    """A user's JSON file, parsed; a DataError naming the file and line when it is not UTF-8 or not JSON."""
    raw = file.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{file}:{line}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}:{exc.lineno}: not a valid JSON file ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{file}: JSON nested too deeply") from None


def iter_json_list(file: Path, of: str = "", chunk: int = 1 << 22) -> Iterator[Any]:
    """The items of a JSON file holding one list, parsed one at a time.

    The same values and errors as `read_json_file`, without holding the whole file: for
    mix665k (1 GB) json.load peaks above 5 GB and this at a few MB. The standard library
    parses each item (`raw_decode`). A file that is not a list is a DataError ("expected a
    JSON list{of}").
    """
    with file.open("rb") as handle:
        reader = _ListReader(handle, chunk)
        if reader.opens_list():
            yield from _items(reader, file)
            return
    value = read_json_file(file)  # names a bad byte or bad JSON; else it is not a list
    raise DataError(f"{file}: expected a JSON list{of}, got {type(value).__name__}")


def _items(reader: "_ListReader", file: Path) -> Iterator[Any]:
    try:
        yield from reader.items()
    except UnicodeDecodeError as exc:
        start = reader.offset + exc.start
        line = _lines_before(file, start)
        raise DataError(f"{file}:{line}: not UTF-8 text (byte {start}: {exc.reason}); save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        line = reader.text[: exc.pos].count("\n") + reader.lines
        raise DataError(f"{file}:{line}: not a valid JSON file ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{file}: JSON nested too deeply") from None


class _ListReader:
    """Decodes a JSON list item by item from a UTF-8 file read in chunks."""

    def __init__(self, handle: Any, chunk: int):
        self.handle, self.chunk = handle, chunk
        self.decoder, self.utf8 = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")()
        self.text, self.pos, self.lines = "", 0, 1  # lines: the line number at text[0]
        self.read, self.offset, self.done = 0, 0, False  # offset: the file byte the decoder is at

    def more(self) -> bool:
        """Append the next chunk to the text (dropping what was parsed); False at the end."""
        if self.done:
            return False
        data = self.handle.read(self.chunk)
        self.offset = self.read - len(self.utf8.getstate()[0])  # bytes held from the last chunk
        self.read += len(data)
        self.done = not data
        self.lines += self.text.count("\n", 0, self.pos)
        self.text = self.text[self.pos:] + self.utf8.decode(data, final=self.done)
        self.pos = 0
        return True

    def opens_list(self) -> bool:
        try:
            while not self.text.lstrip() and self.more():
                pass
        except UnicodeDecodeError:
            return False  # read_json_file names the byte
        stripped = self.text.lstrip()
        if stripped.startswith("\ufeff") or not stripped.startswith("["):
            return False
        self.pos = self.text.index("[") + 1
        return True

    def items(self) -> Iterator[Any]:
        while True:
            self._skip(" \t\r\n")
            if self.text.startswith("]", self.pos):
                self.pos += 1
                self._skip(" \t\r\n")
                if self.pos < len(self.text):
                    raise json.JSONDecodeError("Extra data", self.text, self.pos)
                return
            yield self._item()
            self._skip(" \t\r\n")
            if self.text.startswith(",", self.pos):
                self.pos += 1
                self._skip(" \t\r\n")
                if self.text.startswith("]", self.pos):  # json.loads rejects `[1,]`: so must this reader
                    raise json.JSONDecodeError("Illegal trailing comma before end of array", self.text, self.pos)
            elif not self.text.startswith("]", self.pos):
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, self.pos)

    def _skip(self, blanks: str) -> None:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in blanks:
                self.pos += 1
            if self.pos < len(self.text) or not self.more():
                return

    def _item(self) -> Any:
        while True:  # an item cut by the chunk's end either fails or ends at the text's end
            try:
                value, end = self.decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            if end == len(self.text) and self.more():
                continue
            self.pos = end
            return value


def _lines_before(file: Path, offset: int) -> int:
    with file.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1
