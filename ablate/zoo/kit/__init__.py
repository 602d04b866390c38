"""The rehearsal kit: the paper recipes' checkpoints and data sets in their real layouts, tiny.

`ensure_kit()` builds it once under `$ABLATE_HOME/rehearsal/` (about 10 seconds) and returns a
`Kit`; `ablate study NAME --scale paper --rehearse` runs a study's paper-scale cells on it.

    hub/<org>/<repo>/   checkpoints laid out file for file like the hub repos (`checkpoints`)
    data/...            data sets in LLaVA's `playground/data` layout (`llava_files`, `benchmarks`),
                        and documents for lmms-eval's tasks mme, gqa and mmvet (`lmms_docs`)
    kit.json            the kit's version; manifest.json: every file's size and sha256

Building is safe from several processes (a file lock; the folder appears in one rename). A kit
whose files differ from its manifest (truncated, edited, half deleted), or that an older
version of this code built, is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

KIT_VERSION = 2  # bump when what the builders write changes
KIT_FILE = "kit.json"
HUB, DATA = "hub", "data"


@dataclass(frozen=True)
class Kit:
    root: Path

    def entries(self) -> list[PurePath]:
        """Every file and folder of the kit, relative to its root (from its manifest)."""
        from ablate.zoo.manifest import MANIFEST_FILE

        files = [PurePath(name) for name in json.loads((self.root / MANIFEST_FILE).read_text())]
        folders = {parent for f in files for parent in f.parents if parent != PurePath(".")}
        return sorted(set(files) | folders)

    def checkpoint(self, repo: str) -> Path:
        return self.root / HUB / repo

    def data(self, relative: str) -> Path:
        return self.root / DATA / relative


def kit_dir() -> Path:
    from ablate.zoo import ablate_home

    return ablate_home() / "rehearsal"


def kit_problem(root: Path) -> str | None:
    """Why `root` is not a complete kit of this version, or None when it is."""
    from ablate.zoo.manifest import MANIFEST_FILE, manifest_problem

    try:
        version = json.loads((root / KIT_FILE).read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return "it is not built" if not root.exists() else f"its {KIT_FILE} is missing or unreadable"
    if version != KIT_VERSION:
        return f"it was built by another version of ablate (kit version {version}, this one writes {KIT_VERSION})"
    if not (root / MANIFEST_FILE).is_file():
        return f"its {MANIFEST_FILE} is missing"
    return manifest_problem(root)


def ensure_kit(say: Callable[[str], None] = lambda line: None) -> Kit:
    """The kit, built (or rebuilt, saying why through `say`) when it is missing or damaged."""
    from ablate.fingerprint import lock

    root = kit_dir()
    if kit_problem(root) is None:
        return Kit(root)
    with lock(root.parent / ".rehearsal.lock"):
        problem = kit_problem(root)  # another process may have built it meanwhile
        if problem is not None:
            say(f"building the rehearsal kit in {root} ({problem})")
            _build_into(root)
    return Kit(root)


def _build_into(root: Path) -> None:
    from ablate.zoo.manifest import write_whole

    def fill(staging: Path) -> None:
        write_kit(staging)
        (staging / KIT_FILE).write_text(json.dumps({"version": KIT_VERSION}) + "\n")

    write_whole(root, fill)


def write_kit(root: Path) -> None:
    """Every data set, then the checkpoints (their tokenizer is trained on the data's texts)."""
    from ablate.zoo.kit.benchmarks import write_benchmarks
    from ablate.zoo.kit.checkpoints import write_checkpoints
    from ablate.zoo.kit.llava_files import write_llava_training_data
    from ablate.zoo.kit.lmms_docs import write_lmms_docs

    write_llava_training_data(root / DATA)
    write_benchmarks(root / DATA)
    write_lmms_docs(root / DATA)
    write_checkpoints(root / HUB, tokenizer_corpus(root / DATA))


def tokenizer_corpus(data: Path) -> list[str]:
    """Every text of the kit's data sets, with the chat roles the templates add."""
    from ablate.scienceqa.problems import load_problems
    from ablate.templates.vicuna_v1 import VICUNA_V1_SYSTEM

    lines = ["USER:", "ASSISTANT:", VICUNA_V1_SYSTEM]
    for file in sorted(data.rglob("*.json")):
        payload = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(payload, list):
            lines += [turn["value"] for item in payload for turn in item.get("conversations", [])]
            lines += [item[key] for item in payload for key in ("question", "answer") if isinstance(item.get(key), str)]
    for problem in load_problems(data / "ScienceQA").values():
        lines += [problem["question"], *problem["choices"], problem["hint"], problem["lecture"], problem["solution"]]
    return [line for line in lines if line]
