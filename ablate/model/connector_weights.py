"""Saving and loading connector weights on their own (LLaVA's `pretrain_mm_mlp_adapter`).

Accepted sources: a safetensors file (or LLaVA's `mm_projector.bin`) whose keys are the
connector's own, or carry a `connector.` (a saved VisionLanguageModel) or LLaVA
`model.mm_projector.` prefix; or a folder holding one of CONNECTOR_FILES, directly or in its
latest `checkpoint-N` subfolder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ablate.errors import AblateError

CONNECTOR_FILE = "connector.safetensors"
# Looked for, in this order, inside a folder.
CONNECTOR_FILES = (CONNECTOR_FILE, "mm_projector.safetensors", "mm_projector.bin", "model.safetensors")
# Longest first: the first one that any key carries is stripped, keys without it are ignored.
KEY_PREFIXES = ("base_model.model.model.mm_projector.", "model.mm_projector.", "mm_projector.", "connector.")


def save_connector_weights(connector: Any, path: str | Path) -> Path:
    """Write the connector's state dict (unprefixed keys) to `path` (a file, or a folder for CONNECTOR_FILE)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / CONNECTOR_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in connector.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def find_connector_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.exists():
        raise AblateError(f"init_connector: {path} does not exist")
    folders = [path] + sorted(
        (p for p in path.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)),
        key=lambda p: int(p.name.split("-")[1]), reverse=True,
    )[:1]
    for folder in folders:
        for name in CONNECTOR_FILES:
            if (folder / name).is_file():
                return folder / name
    raise AblateError(
        f"init_connector: no connector weights in {path} (looked for {', '.join(CONNECTOR_FILES)}, "
        "also in its latest checkpoint-N folder)"
    )


def read_connector_state(path: str | Path, *, shapes_only: bool = False) -> dict[str, Any]:
    """The connector's weights from `path`, with any known key prefix removed. `shapes_only`:
    {key: shape} read from the file's header (safetensors) or as meta tensors (torch files),
    without loading the weights."""
    file = find_connector_file(path)
    try:
        state = _read_file(file, shapes_only)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise AblateError(f"init_connector: cannot read {file}: {err}") from None
    if not isinstance(state, dict):
        raise AblateError(f"init_connector: {file} does not hold a state dict")
    for prefix in KEY_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    else:
        if file.name == "model.safetensors":
            raise AblateError(f"init_connector: {file} has no connector weights (no 'connector.' keys)")
    return state


def _read_file(file: Path, shapes_only: bool) -> Any:
    import torch

    if file.suffix != ".safetensors":
        return torch.load(file, map_location="meta" if shapes_only else "cpu", weights_only=True)
    if not shapes_only:
        from safetensors.torch import load_file

        return load_file(str(file))
    from safetensors import safe_open

    with safe_open(str(file), "pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}


def load_connector_weights(connector: Any, path: str | Path) -> None:
    """Load weights into `connector`; mismatched names or shapes are an AblateError naming each."""
    state = read_connector_state(path)
    problem = _misfit(connector, path, {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise AblateError(problem)
    connector.load_state_dict(state)


def connector_file_problem(connector: Any, path: str | Path) -> str | None:
    """What keeps `path`'s weights from loading into `connector` (a missing file, other names or
    shapes), read without loading the weights; None when they fit. `connector` may be on the
    meta device."""
    try:
        state = read_connector_state(path, shapes_only=True)
    except AblateError as error:
        return str(error)
    return _misfit(connector, path, {k: tuple(getattr(v, "shape", v)) for k, v in state.items()})


def _misfit(connector: Any, path: str | Path, shapes: dict[str, tuple]) -> str | None:
    """The message naming every missing, unexpected or misshapen weight; None when all fit."""
    own = {k: tuple(v.shape) for k, v in connector.state_dict().items()}
    problems = [f"missing {k}" for k in own if k not in shapes]
    problems += [f"unexpected {k}" for k in shapes if k not in own]
    problems += [
        f"{k}: file has shape {list(shapes[k])}, connector expects {list(v)}"
        for k, v in own.items() if k in shapes and shapes[k] != v
    ]
    if not problems:
        return None
    return (f"init_connector {path}: weights do not fit the connector {type(connector).__name__} "
            f"(built for another encoder/LLM or connector type?):\n  - " + "\n  - ".join(problems))
