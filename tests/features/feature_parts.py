"""Encoders and images for the feature-cache tests.

`tiny_clip` is a real CLIPVisionModel behind the encoder contract. `PatchEncoder` cuts images
into patches with no arithmetic, so its output is the same bits in every process and batch
(the multi-process test compares features written by different processes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

SIZE = 32  # image side in pixels
PATCH = 8


def write_images(folder: Path, count: int, seed: int = 0, start: int = 0) -> list[str]:
    """`count` random RGB PNGs (SIZE x SIZE) in `folder`; their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


class CountingEncoder(nn.Module):
    """Wraps an encoder and counts forward calls and images encoded."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.images = 0
        for name in ("cache_key", "num_tokens", "feature_dim", "image_processor"):
            setattr(self, name, getattr(inner, name))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images += pixel_values.shape[0]
        return self.inner(pixel_values)


class TinyClip(nn.Module):
    """CLIPVisionModel, layer -2, CLS dropped (like hf_clip's defaults)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(seed)
        config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=SIZE, patch_size=PATCH)
        self.model = CLIPVisionModel(config).eval()
        self.image_processor = CLIPImageProcessor(
            size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}
        )
        self.num_tokens = (SIZE // PATCH) ** 2
        self.feature_dim = 16
        self.cache_key = f"test-tiny-clip-{seed}"

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]


class PixelProcessor:
    """PIL images -> {"pixel_values": [B, 3, H, W]} in [0, 1], like an image processor."""

    image_mean = (0.5, 0.5, 0.5)

    def __call__(self, images, return_tensors: str = "pt"):
        arrays = np.stack([np.asarray(img, dtype=np.float32) / 255.0 for img in images])
        return {"pixel_values": torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()}


class PatchEncoder(nn.Module):
    """[B, 3, H, W] -> [B, (H/P)*(W/P), 3*P*P]: patches, no arithmetic."""

    def __init__(self, cache_key: str = "test-patches"):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)  # gives the module a device and dtype
        self.image_processor = PixelProcessor()
        self.num_tokens = (SIZE // PATCH) ** 2
        self.feature_dim = 3 * PATCH * PATCH
        self.cache_key = cache_key

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        b, c, h, w = pixel_values.shape
        patches = pixel_values.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # B, C, h, w, P, P
        return patches.permute(0, 2, 3, 1, 4, 5).reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


def fill_cache(root: str, paths: list[str], batch_size: int, barrier, results) -> None:
    """Child process: look up `paths` in small batches through a shared cache; report its counts."""
    from ablate.features.cache import FeatureCache

    torch.set_num_threads(1)
    cache = FeatureCache(root, PatchEncoder(), batch_size=batch_size)
    barrier.wait()  # start together, so the two processes really interleave their writes
    for start in range(0, len(paths), batch_size):
        cache.get_many(paths[start : start + batch_size])
    results.put(cache.counts())
