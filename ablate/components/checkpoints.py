"""Open a checkpoint by name or path, offline-first, failing fast with a clear message.

Order: `zoo:` names are built/resolved; a local folder is read with no network at all; a Hub
id is looked up in the local Hugging Face cache first and only then online, and only when the
Hub answers at all (a quick socket probe), so a machine without network gets an immediate
`MissingCheckpointError` instead of the Hub client's minute of retries.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

from safetensors import SafetensorError

from ablate.errors import MissingCheckpointError
from ablate.zoo import resolve_checkpoint

T = TypeVar("T")

# "name" or "org/name" as the Hub spells repo ids.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_TRUE = {"1", "on", "yes", "true"}
HUB_PROBE_TIMEOUT_S = 3.0


def open_checkpoint(component: str, name_or_path: str, load: Callable[..., T], what: str = "") -> T:
    """Call `load(source, local_files_only=...)` where the checkpoint can be found.

    `load` is e.g. `lambda src, **kw: CLIPVisionModel.from_pretrained(src, **kw)`. Any failure
    to find or read the checkpoint becomes `MissingCheckpointError(component, name_or_path, why)`;
    `component` is the recipe section ("encoder", "llm") so the message can name the override,
    `what` ("tokenizer", "image processor") prefixes the reason when it is not the weights.
    """
    prefix = f"{what}: " if what else ""
    source = resolve_checkpoint(name_or_path)
    if os.path.isdir(source):
        return _attempt(component, name_or_path, prefix, lambda: load(source, local_files_only=True))
    if os.path.exists(source):
        raise MissingCheckpointError(component, name_or_path, f"{prefix}{source} is a file, not a checkpoint folder")
    if not _REPO_ID.fullmatch(source) or source.startswith("."):
        raise MissingCheckpointError(component, name_or_path, f"{prefix}there is no folder {source}")
    cached = _attempt(component, name_or_path, prefix, lambda: load(source, local_files_only=True), missing_ok=True)
    if cached is not _NOT_FOUND:
        return cached
    # Not in the local cache: go online if we can.
    if hub_offline():
        raise MissingCheckpointError(
            component, name_or_path, f"{prefix}it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        )
    if not hub_reachable():
        raise MissingCheckpointError(
            component, name_or_path,
            f"{prefix}it is not in the local Hugging Face cache and {_endpoint()} cannot be reached",
        )
    return _attempt(component, name_or_path, prefix, lambda: load(source, local_files_only=False))


_NOT_FOUND = object()


def _attempt(component: str, name: str, prefix: str, call: Callable[[], T], missing_ok: bool = False) -> T:
    """Run `call`; failures to find or read the checkpoint become MissingCheckpointError
    (or `_NOT_FOUND` for "not there" when `missing_ok`)."""
    try:
        with quiet_transformers():
            return call()
    except OSError as error:  # absent files, Hub errors, offline mode
        if missing_ok:
            return _NOT_FOUND
        raise MissingCheckpointError(component, name, prefix + _first_line(error)) from None
    except ValueError as error:  # unreadable or unrecognised config
        raise MissingCheckpointError(component, name, prefix + _first_line(error)) from None
    except SafetensorError as error:  # a truncated or overwritten weights file
        raise MissingCheckpointError(component, name, f"{prefix}a weights file is damaged ({_first_line(error)})") from None
    except RuntimeError as error:
        if "ignore_mismatched_sizes" not in str(error):  # e.g. out of memory: not ours to rename
            raise
        reason = "some weights do not have the shapes its config.json gives"
        raise MissingCheckpointError(component, name, prefix + reason) from None


def checkpoint_dir(source: str) -> Path | None:
    """The local folder holding a resolved checkpoint (a Hub id's cached snapshot), if any."""
    if os.path.isdir(source):
        return Path(source).resolve()
    try:
        from transformers.utils import cached_file

        config = cached_file(source, "config.json", local_files_only=True)
    except OSError:
        return None
    return Path(config).parent if config else None


def checkpoint_config(component: str, name_or_path: str):
    """The checkpoint's config.json as a transformers config, read offline and without weights:
    from a local folder, a `zoo:` entry (its spec's config while it is not built yet), or a Hub
    id's snapshot in the local Hugging Face cache. MissingCheckpointError naming `component`
    ("encoder", "llm") when none of them has it."""
    from transformers import AutoConfig

    from ablate.errors import AblateError
    from ablate.zoo import ZOO_PREFIX, is_built, spec_config, zoo_dir

    if name_or_path.startswith(ZOO_PREFIX):
        name = name_or_path[len(ZOO_PREFIX):]
        zoo_dir()  # an unusable ABLATE_HOME is named as such, not as a checkpoint the Hub may not reach
        try:
            built = is_built(name)
        except AblateError as error:  # an unknown zoo name
            raise MissingCheckpointError(component, name_or_path, str(error)) from None
        if not built:
            return spec_config(name)
        folder = str(zoo_dir() / name)
    else:
        folder = _config_folder(component, name_or_path, resolve_checkpoint(name_or_path))
    return _attempt(component, name_or_path, "", lambda: AutoConfig.from_pretrained(folder, local_files_only=True))


def _config_folder(component: str, name: str, source: str) -> str:
    """The local folder whose config.json describes `source` (a folder, or a cached Hub snapshot)."""
    if os.path.isdir(source):
        return source
    if os.path.exists(source):
        raise MissingCheckpointError(component, name, f"{source} is a file, not a checkpoint folder")
    if not _REPO_ID.fullmatch(source) or source.startswith("."):
        raise MissingCheckpointError(component, name, f"there is no folder {source}")
    folder = checkpoint_dir(source)
    if folder is None:
        raise MissingCheckpointError(component, name, "its config.json is not in the local Hugging Face cache")
    return str(folder)


# Files that make up a tokenizer: fingerprinted on their own, so a run can say "tokenizer changed".
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "spiece.model", "chat_template.jinja",
    "chat_template.json",
)


def checkpoint_files(name_or_path: str, *, tokenizer: bool = False) -> dict[str, str]:
    """{file: fingerprint} of a checkpoint's folder (`ablate.fingerprint`'s rule): its tokenizer
    files with `tokenizer`, every other file without. A checkpoint that is not on this machine
    is named by where it would come from (training it fails with MissingCheckpointError)."""
    from ablate.fingerprint import folder_fingerprint

    from ablate.zoo import ZOO_PREFIX, is_built, zoo_dir

    if name_or_path.startswith(ZOO_PREFIX):  # never built here: runs build their zoo entries first
        name = name_or_path[len(ZOO_PREFIX):]
        if not is_built(name):
            return {"unbuilt": name_or_path}
        source = str(zoo_dir() / name)
    else:
        source = resolve_checkpoint(name_or_path)
    folder = checkpoint_dir(source)
    if folder is None:
        return {"unresolved": source}
    if tokenizer:
        return folder_fingerprint(folder, only=TOKENIZER_FILES)
    return folder_fingerprint(folder, skip=TOKENIZER_FILES)


def checkpoint_fingerprint(component_config: Any, name_or_path: str) -> str:
    """Hash of a component config and its checkpoint's files: changes whenever either does
    (a rebuilt zoo entry, a new snapshot, an edited preprocessor_config.json)."""
    from ablate.fingerprint import content_hash

    payload = {"config": component_config.model_dump(mode="json"), "files": checkpoint_files(name_or_path)}
    return content_hash(payload, length=20)


def hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    return _probe(_endpoint())


@lru_cache(maxsize=None)
def _probe(endpoint: str) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")


@contextmanager
def quiet_transformers():
    """Silence transformers' per-key load reports while loading: callers check
    `output_loading_info` themselves (unused keys are expected when taking a vision tower
    out of a full CLIP/SigLIP checkpoint)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
