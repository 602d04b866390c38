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
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: sample {sample_id!r}: image file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise DataError(f"{path}: sample {sample_id!r}: cannot read image ({exc})") from None
