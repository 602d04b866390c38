"""A recipe's model on the meta device, as `ablate study --check` builds it (no weights read).

A checkpoint whose config.json is not on this machine (a hub id never downloaded, such as
`lmsys/vicuna-13b-v1.5`) is built from the full-size config of the rehearsal kit's stand-in for
it (`ablate.zoo.kit.checkpoints.full_size_config`), and the plan says so. One with no stand-in
stops the plan with the checkpoint error.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ablate.errors import AblateError, MissingCheckpointError

KIT_NOTE = "config from the rehearsal kit: real checkpoint not present"


@dataclass
class MetaModel:
    vlm: Any
    notes: list[str] = field(default_factory=list)  # one per checkpoint taken from the kit


def model_on_meta(model_section) -> MetaModel:
    """The recipe's VisionLanguageModel on the meta device, kit configs standing in where needed."""
    from ablate.model.build import component_on_meta, vlm_on_meta

    parts, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="ablate-plan-") as folder:
        for kind in ("encoder", "llm"):
            config = getattr(model_section, kind)
            try:
                parts[kind] = component_on_meta(kind, config)
            except MissingCheckpointError:
                stand_in = _kit_config(kind, config, Path(folder))
                if stand_in is None:
                    raise
                parts[kind] = component_on_meta(kind, stand_in)
                notes.append(f"{kind} {config.name_or_path}: {KIT_NOTE}")
            if parts[kind] is None:
                raise AblateError(f"model.{kind}: type {config.type!r} cannot be built on the meta device (its "
                                  "builder takes no `meta` argument), so ablate plan cannot count its parameters")
    return MetaModel(vlm_on_meta(model_section, parts["encoder"], parts["llm"]), notes)


def kit_repo(name_or_path: str) -> str | None:
    """The kit repo standing in for `name_or_path`: the same hub id, or a path ending in its name."""
    from ablate.zoo.kit.checkpoints import CLIPS, VICUNAS

    parts = PurePath(name_or_path).parts
    for repo in (*VICUNAS, *CLIPS):
        if parts[-2:] == tuple(repo.split("/")) or (parts and parts[-1] == repo.split("/")[-1]):
            return repo
    return None


def _kit_config(kind: str, config, folder: Path):
    """`config` pointed at a folder holding the kit's full-size config.json for it, or None."""
    from ablate.zoo.kit.checkpoints import full_size_config

    repo = kit_repo(getattr(config, "name_or_path", "") or "")
    if repo is None:
        return None
    target = folder / kind
    target.mkdir()
    (target / "config.json").write_text(json.dumps(full_size_config(repo)), encoding="utf-8")
    return config.model_copy(update={"name_or_path": str(target)})
