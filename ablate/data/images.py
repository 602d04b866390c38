"""Opening a sample's image; decode errors become DataErrors naming the file and sample."""

from __future__ import annotations

from typing import Any

from ablate.errors import DataError


def load_image(path: str, sample_id: str) -> Any:
    """The image at `path` as an RGB `PIL.Image.Image`, fully decoded.

    Raises DataError (naming the file and the sample id) when the file is missing or is
    not a readable image.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # Decode now so truncated files fail here, not later in a worker. lmms-eval sets PIL's
            # process-wide LOAD_TRUNCATED_IMAGES when imported; a cut-off file must still fail.
            allowed, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
            try:
                image.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = allowed
            return _to_rgb(image)
    except FileNotFoundError:
        raise DataError(f"{path}: sample {sample_id!r}: image file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(f"{path}: sample {sample_id!r}: cannot read image ({exc})") from None


def _to_rgb(image: Any) -> Any:
    """RGB, with 16-bit grayscale scaled to 8 bits: PIL's convert clips its values at 255 instead,
    so a 16-bit PNG (values up to 65535) would come out all but white."""
    if image.mode.startswith("I;16"):
        import numpy as np
        from PIL import Image

        values = np.asarray(image, dtype=np.uint16)
        image = Image.fromarray((values >> 8).astype(np.uint8))  # mode L
    return image.convert("RGB")
