"""image_aspect_ratio: square (the processor alone), pad (LLaVA-1.5's mean-colour canvas), resize."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ablate.data.aspect_ratio import expand_to_square, input_size, mean_colour, pixel_values
from ablate.errors import AblateError

BLUE, GREEN, RED = (0, 0, 255), (0, 255, 0), (255, 0, 0)


def clip_processor(side: int = 8, **extra):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side}, **extra)


def bands(width: int, height: int, colours) -> Image.Image:
    """Vertical bands of equal width, left to right."""
    image = Image.new("RGB", (width, height))
    step = width // len(colours)
    for i, colour in enumerate(colours):
        image.paste(colour, (i * step, 0, (i + 1) * step, height))
    return image


def normalised(colour, processor) -> torch.Tensor:
    """What the processor makes of one pixel of `colour`: rescaled to [0, 1], then normalised."""
    mean, std = torch.tensor(processor.image_mean), torch.tensor(processor.image_std)
    return (torch.tensor(colour, dtype=torch.float32) / 255 - mean) / std


def test_pad_canvas_is_the_mean_colour_with_the_image_centred():
    processor = clip_processor()
    assert mean_colour(processor) == (122, 116, 104)  # CLIP's mean x 255, truncated as LLaVA does
    wide = expand_to_square(Image.new("RGB", (6, 2), RED), (122, 116, 104))
    assert wide.size == (6, 6)
    assert [wide.getpixel((0, y)) for y in range(6)] == [(122, 116, 104)] * 2 + [RED] * 2 + [(122, 116, 104)] * 2
    tall = expand_to_square(Image.new("RGB", (2, 5), BLUE), (1, 2, 3))  # odd margin: 1 left, 2 right
    assert [tall.getpixel((x, 0)) for x in range(5)] == [(1, 2, 3), BLUE, BLUE, (1, 2, 3), (1, 2, 3)]
    already = Image.new("RGB", (4, 4), RED)
    assert expand_to_square(already, (0, 0, 0)) is already


def test_pad_then_the_processor_keeps_the_whole_image():
    processor = clip_processor()
    out = pixel_values([Image.new("RGB", (8, 4), RED)], processor, "pad")
    assert out.shape == (1, 3, 8, 8)  # the 8x8 canvas needs no resize and no crop
    background, red = normalised((122, 116, 104), processor), normalised(RED, processor)
    for row, colour in [(0, background), (1, background), (2, red), (5, red), (6, background), (7, background)]:
        assert torch.allclose(out[0, :, row, :], colour[:, None].expand(3, 8), atol=1e-5), row
    assert torch.equal(out, pixel_values([expand_to_square(Image.new("RGB", (8, 4), RED), (122, 116, 104))],
                                         processor, "square"))


def test_square_crops_the_middle_and_resize_squeezes_the_whole_image():
    processor, image = clip_processor(), bands(24, 4, [BLUE, GREEN, RED])
    square = pixel_values([image], processor, "square")
    resized = pixel_values([image], processor, "resize")
    assert square.shape == resized.shape == (1, 3, 8, 8)
    # square: shortest side 4 -> 8 makes it 48x8, and the centre crop keeps the green middle only
    assert torch.allclose(square[0], normalised(GREEN, processor)[:, None, None].expand(3, 8, 8), atol=1e-5)
    # resize: all three bands, squeezed to 8 columns; the outer columns are pure blue and pure red
    assert torch.allclose(resized[0, :, :, 0], normalised(BLUE, processor)[:, None].expand(3, 8), atol=1e-5)
    assert torch.allclose(resized[0, :, :, 7], normalised(RED, processor)[:, None].expand(3, 8), atol=1e-5)
    # the processor's own resampling, to its input size exactly
    squeezed = image.resize((8, 8), resample=Image.Resampling(processor.resample))
    assert torch.equal(resized, pixel_values([squeezed], processor, "square"))


def test_input_size_is_the_crop_or_the_resize_target():
    from transformers import SiglipImageProcessorPil

    assert input_size(clip_processor(336)) == (336, 336)
    assert input_size(clip_processor(336, do_center_crop=False)) == (336, 336)  # shortest_edge
    siglip = SiglipImageProcessorPil(size={"height": 24, "width": 24})
    assert input_size(siglip) == (24, 24)
    assert pixel_values([Image.new("RGB", (40, 10))], siglip, "resize").shape == (1, 3, 24, 24)

    class NoSize:
        image_mean = (0.5, 0.5, 0.5)

    with pytest.raises(AblateError, match="image processor NoSize states no input size"):
        pixel_values([Image.new("RGB", (4, 4))], NoSize(), "resize")


def test_unknown_mode_is_refused():
    from ablate.data.collate import VLMCollator

    with pytest.raises(AblateError, match="image_aspect_ratio must be one of square, pad, resize, got 'crop'"):
        VLMCollator(pad_token_id=0, image_aspect_ratio="crop")
