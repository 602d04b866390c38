"""FeatureCache: a frozen encoder's features per image, computed once and read from disk after.

Stored under `<root>/<encoder.cache_key>/<variant>/` (root defaults to `$ABLATE_HOME/features`).
`cache_key` hashes the encoder config (feature layers, token selection, dtype) and its
checkpoint's files (`ablate.fingerprint`'s rule, as for stage keys), so any change there gets a
new folder; `variant` names the stored dtype and the image_aspect_ratio images were prepared with
(`<dtype>-<square|pad|resize>`: each gives other features). Images
are keyed by `ablate.fingerprint.image_stamp` (real path, size, mtime): an edited file is
encoded again. Several processes (study workers, DDP ranks, DataLoader workers) may share one cache.

Only valid while the encoder keeps its checkpoint weights: callers must not use it after a stage
has trained the encoder (see `ablate.run.feature_plan`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ablate.components.contracts import encoder_features_problem
from ablate.data.aspect_ratio import checked_aspect_ratio
from ablate.errors import AblateError, DataError
from ablate.features.store import RowStore
from ablate.fingerprint import image_stamp

_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_SLOTS = 65  # counter rows: 0 for the main process, 1 + id for DataLoader workers


class FeatureCache:
    def __init__(
        self,
        root: str | os.PathLike | None,
        encoder: torch.nn.Module,
        *,
        dtype: str | torch.dtype = torch.float32,
        image_aspect_ratio: str = "square",
        batch_size: int = 32,
        writes: bool = True,
        label: str | None = None,
    ):
        """`writes=False` makes a reader: it uses stored rows and encodes its misses without
        storing them (under torchrun only rank 0 writes; it fills the cache before a stage).
        `label` names the encoder in errors (default: its class)."""
        from ablate.data.collate import VLMCollator

        key = getattr(encoder, "cache_key", None)
        if not key:
            raise AblateError(f"encoder {type(encoder).__name__} has no cache_key: its features cannot be cached")
        self.dtype = _torch_dtype(dtype)
        self.encoder = encoder
        self.label = label or f"encoder {type(encoder).__name__}"
        self.batch_size = int(batch_size)
        self.writes = writes
        self.shape = (int(encoder.num_tokens), int(encoder.feature_dim))
        self.image_aspect_ratio = checked_aspect_ratio(image_aspect_ratio)
        name = f"{str(self.dtype).removeprefix('torch.')}-{image_aspect_ratio}"
        base = Path(root) if root is not None else _default_root()
        self.directory = base / key / name
        self.store = RowStore(self.directory, self.shape, _numpy_dtype(self.dtype),
                              meta={"cache_key": key, "image_aspect_ratio": image_aspect_ratio}, writes=writes)
        # The same loading and preprocessing as the uncached path, so inputs are identical.
        self._pixels = VLMCollator(image_processor=encoder.image_processor, pad_token_id=0,
                                   image_aspect_ratio=image_aspect_ratio)
        # Shared memory, so lookups in DataLoader workers count too (each process its own row).
        self._counts = torch.zeros(_SLOTS, 2, dtype=torch.long).share_memory_()

    # --- lookups ---------------------------------------------------------------------------------

    def get_many(self, images: Sequence[Any], ids: Sequence[str] | None = None, *, encode: bool = True) -> torch.Tensor:
        """Features [K, num_tokens, feature_dim] of K images (paths, or PIL images), encoding misses in
        batches; `encode=False` makes a miss an error instead (see `stored_lookup`)."""
        ids = [str(i) for i in ids] if ids is not None else [str(img) for img in images]
        keys = [self._key(img, sid) for img, sid in zip(images, ids)]
        rows = self.store.rows([k if k is not None else ("",) for k in keys])
        todo: dict[tuple, int] = {}  # first position of each key to encode
        for pos, (key, row) in enumerate(zip(keys, rows)):
            if key is not None and row is None and key not in todo:
                todo[key] = pos
        if not encode and (missed := [p for p, (k, r) in enumerate(zip(keys, rows)) if k is None or r is None]):
            raise DataError(f"sample {ids[missed[0]]!r}: image {str(images[missed[0]])!r} is not in the feature cache "
                            f"{self.directory}, which was filled before the stage (was the file changed since?); "
                            f"this stage cannot encode it: under ZeRO-3 one rank running the encoder would wait "
                            f"forever for the others")
        if not self.writes:  # a reader encodes its misses in place, storing nothing
            keys = [None if key in todo else key for key in keys]
            todo = {}
        uncachable = [pos for pos, key in enumerate(keys) if key is None]
        for chunk in _chunks(list(todo.items()), self.batch_size):
            feats = self._encode([images[p] for _, p in chunk], [ids[p] for _, p in chunk])
            self.store.add({key: f.numpy() for (key, _), f in zip(chunk, feats)})
        self._count(hits=len(keys) - len(todo) - len(uncachable), misses=len(todo) + len(uncachable))

        out = torch.empty((len(keys), *self.shape), dtype=self.dtype)
        cached = [pos for pos, key in enumerate(keys) if key is not None]
        if cached:
            stored = self.store.rows([keys[p] for p in cached])
            out[cached] = torch.from_numpy(self.store.read(stored))
        for chunk in _chunks(uncachable, self.batch_size):
            out[chunk] = self._encode([images[p] for p in chunk], [ids[p] for p in chunk])
        return out

    def lookup(self, sample_id: str, image_path: Any) -> torch.Tensor:
        """One image's features [num_tokens, feature_dim] (the collator's `feature_lookup`)."""
        return self.get_many([image_path], [sample_id])[0]

    __call__ = lookup

    def batch_lookup(self, ids: Sequence[str], images: Sequence[Any]) -> torch.Tensor:
        """The collator's `batch_feature_lookup`: a batch's features, misses encoded together."""
        return self.get_many(images, ids)

    def stored_lookup(self, ids: Sequence[str], images: Sequence[Any]) -> torch.Tensor:
        """A `batch_feature_lookup` that never runs the encoder: every image must be stored already.

        For ZeRO-3 stages: once the stage's engine exists the encoder is partitioned across ranks,
        and an encoder call on one rank alone would wait forever for the others' gathers."""
        return self.get_many(images, ids, encode=False)

    def prefill(self, images: Iterable[Any], *, device: str | torch.device | None = "auto",
                rank: int | None = None, world_size: int | None = None) -> int:
        """Encode every image not cached yet; returns how many this process encoded.

        For DataLoader workers, which cannot run a CUDA encoder. With several ranks each starts
        at its own offset and skips what others stored meanwhile, so they share the work.
        `device="auto"` runs the encoder on this rank's GPU when there is one, then puts it back.
        """
        if not self.writes:
            return 0
        rank = int(os.environ.get("RANK", 0)) if rank is None else rank
        world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
        distinct: dict[tuple, Any] = {}
        for image in images:
            if image is not None and (key := self._key(image, str(image))) is not None:
                distinct.setdefault(key, image)
        keys = list(distinct)
        start = len(keys) * rank // max(world_size, 1)
        keys = keys[start:] + keys[:start]
        encoded = 0
        with _encoder_on(self.encoder, device):
            for chunk in _chunks(keys, self.batch_size):
                missing = [k for k, row in zip(chunk, self.store.rows(chunk)) if row is None]
                if missing:
                    feats = self._encode([distinct[k] for k in missing], [str(distinct[k]) for k in missing])
                    self.store.add({k: f.numpy() for k, f in zip(missing, feats)})
                    encoded += len(missing)
        self._count(hits=0, misses=encoded)
        return encoded

    # --- counters --------------------------------------------------------------------------------

    @property
    def hits(self) -> int:
        return int(self._counts[:, 0].sum())

    @property
    def misses(self) -> int:
        return int(self._counts[:, 1].sum())

    def counts(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}

    def __len__(self) -> int:
        return len(self.store)

    def _count(self, hits: int, misses: int) -> None:
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else 1 + info.id % (_SLOTS - 1)
        self._counts[slot, 0] += hits
        self._counts[slot, 1] += misses

    # --- encoding --------------------------------------------------------------------------------

    def _key(self, image: Any, sample_id: str) -> tuple | None:
        """(real path, size, mtime_ns) of an image file; None for an in-memory image (not cached)."""
        path = image if isinstance(image, (str, os.PathLike)) else getattr(image, "filename", None)
        if not path:
            return None
        try:
            return image_stamp(path)  # the rule every reuse of image data follows
        except OSError as err:
            raise DataError(f"sample {sample_id!r}: cannot read image {str(path)!r}: {err.strerror}") from None

    def _encode(self, images: Sequence[Any], ids: Sequence[str]) -> torch.Tensor:
        """Encoder output for `images`, on the CPU in the stored dtype: [K, num_tokens, feature_dim]."""
        pixels = self._pixels.images([{"id": i, "image": img} for i, img in zip(ids, images)])["pixel_values"]
        param = next((p for p in self.encoder.parameters() if p.is_floating_point()), None)
        device, dtype = (param.device, param.dtype) if param is not None else (torch.device("cpu"), pixels.dtype)
        was_training = self.encoder.training
        self.encoder.eval()  # no dropout noise in stored features
        try:
            with torch.no_grad():
                feats = self.encoder(pixels.to(device=device, dtype=dtype))
        finally:
            self.encoder.train(was_training)
        if problem := encoder_features_problem(feats, self.encoder, len(images), device):
            raise AblateError(f"{self.label} {problem} (see ablate.components.contracts for what an encoder returns)")
        return feats.to("cpu", self.dtype)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"


def _default_root() -> Path:
    from ablate.zoo import ablate_home

    return ablate_home() / "features"


def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise AblateError(f"feature cache dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")


def _numpy_dtype(dtype: torch.dtype):
    return {torch.float32: np.float32, torch.float16: np.float16}[dtype]


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


@contextlib.contextmanager
def _encoder_on(encoder: torch.nn.Module, device: str | torch.device | None) -> Iterator[None]:
    """Run the block with the encoder on `device` ("auto": this rank's GPU if any; None: where it is)."""
    param = next(encoder.parameters(), None)
    home = param.device if param is not None else None
    if device == "auto":
        gpu = torch.cuda.is_available() and home is not None and home.type == "cpu"
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if gpu else None
    move = device is not None and home is not None and torch.device(device) != home
    if move:
        encoder.to(device)
    try:
        yield
    finally:
        if move:
            encoder.to(home)
