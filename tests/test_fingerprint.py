"""ablate.fingerprint: `ImageStamps` gives `image_stamp`'s values through folders and links."""

from __future__ import annotations

import os

from ablate.fingerprint import ImageStamps, image_stamp


def test_image_stamps_equal_image_stamp(tmp_path, monkeypatch):
    real = tmp_path / "disk" / "coco"
    real.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (real / name).write_bytes(name.encode() * 3)
    (tmp_path / "linked").symlink_to(tmp_path / "disk")  # a data folder that is a link to another disk
    (real / "c.jpg").symlink_to(real / "a.jpg")  # an image that is a link
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "d.jpg").symlink_to("../disk/coco/b.jpg")
    monkeypatch.chdir(tmp_path)
    paths = [str(real / "a.jpg"), str(tmp_path / "linked" / "coco" / "b.jpg"), str(real / "c.jpg"),
             str(tmp_path / "linked" / "coco" / "c.jpg"), "other/d.jpg", "disk/coco/a.jpg",
             str(tmp_path / "linked" / "coco" / ".." / "coco" / "a.jpg")]
    stamps = ImageStamps()
    assert [stamps(p) for p in paths * 2] == [image_stamp(p) for p in paths * 2]
    assert stamps(str(tmp_path / "linked" / "coco" / "b.jpg"))[0] == os.path.realpath(real / "b.jpg")
