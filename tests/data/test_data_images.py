from pathlib import Path

import pytest

from ablate.data.images import load_image
from ablate.errors import DataError

from data_helpers import write_png


def test_load_image_returns_rgb(tmp_path: Path):
    path = write_png(tmp_path / "x.png", (10, 20, 30))
    image = load_image(str(path), "s1")
    assert image.mode == "RGB" and image.size == (4, 4) and image.getpixel((0, 0)) == (10, 20, 30)


def test_undecodable_image_names_file_and_sample(tmp_path: Path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError) as err:
        load_image(str(path), "sample-7")
    assert str(path) in str(err.value) and "'sample-7'" in str(err.value)


def test_truncated_image_fails_at_load(tmp_path: Path):
    path = write_png(tmp_path / "t.png")
    from PIL import Image

    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="t.png: sample 'cut'"):
        load_image(str(path), "cut")


def test_truncated_image_fails_even_where_pil_was_told_to_accept_them(tmp_path: Path, monkeypatch):
    """lmms-eval turns on PIL's process-wide LOAD_TRUNCATED_IMAGES when it is imported."""
    from PIL import Image, ImageFile

    path = tmp_path / "t.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:-30])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="t.png: sample 'cut'"):
        load_image(str(path), "cut")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the process's setting is left as it was


def test_missing_image(tmp_path: Path):
    with pytest.raises(DataError, match="sample 'm': image file not found"):
        load_image(str(tmp_path / "nope.png"), "m")
