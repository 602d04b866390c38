"""How an image becomes the encoder's square input (a stage's `image_aspect_ratio`).

    square  the image processor alone (CLIP: shortest side resized, centre crop); LLaVA's default
    pad     the image centred on a square canvas of the processor's mean colour, then the
            processor (LLaVA-1.5's `--image_aspect_ratio pad`)
    resize  resized to the processor's square input size, aspect ratio ignored, nothing cropped

The training collator, the eval collator and the feature cache all go through `pixel_values`,
so cached features are those the uncached path would compute.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence, get_args

from ablate.errors import AblateError

ImageAspectRatio = Literal["square", "pad", "resize"]
ASPECT_RATIOS: tuple[str, ...] = get_args(ImageAspectRatio)


def expand_to_square(image, background: tuple[int, ...]):
    """A PIL image centred on a square canvas of colour `background` (as is when already square)."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def mean_colour(processor: Any) -> tuple[int, ...]:
    """The processor's normalisation mean as 0-255 values, truncated (LLaVA's pad background)."""
    mean = getattr(processor, "image_mean", None) or (0.0, 0.0, 0.0)
    return tuple(int(m * 255) for m in mean)


def input_size(processor: Any) -> tuple[int, int]:
    """(height, width) the processor outputs: its crop when it crops, else its resize target."""
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    for size in (crop, getattr(processor, "size", None)):
        if size is None:
            continue
        height, width, edge = (_size_field(size, k) for k in ("height", "width", "shortest_edge"))
        if height and width:
            return int(height), int(width)
        if edge:
            return int(edge), int(edge)
    raise AblateError(f"image_aspect_ratio resize: image processor {type(processor).__name__} states no "
                      f"input size (crop_size, or size with height/width or shortest_edge)")


def checked_aspect_ratio(mode: str) -> str:
    if mode not in ASPECT_RATIOS:
        raise AblateError(f"image_aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}, got {mode!r}")
    return mode


def pixel_values(images: Sequence[Any], processor: Any, mode: str):
    """`pixel_values` [K, 3, H, W] of RGB PIL `images`, prepared as `mode` says."""
    checked_aspect_ratio(mode)
    options: dict[str, Any] = {}
    if mode == "pad":
        background = mean_colour(processor)
        images = [expand_to_square(image, background) for image in images]
    elif mode == "resize":  # the processor's own resize, given an exact size and no crop
        height, width = input_size(processor)
        options = {"size": {"height": height, "width": width}, "do_center_crop": False}
    return processor(images, return_tensors="pt", **options)["pixel_values"]


def _size_field(size: Any, name: str) -> Any:
    """A field of a processor's size: a dict in saved configs, a SizeDict once loaded."""
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)
