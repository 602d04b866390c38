import json
import os
import time

import pytest
from PIL import Image
from sqa_helpers import problem, write_scienceqa

from ablate.errors import AblateError
from ablate.registry import registries
from ablate.scienceqa import problems as sqa
from ablate.scienceqa.evaluator import record_columns
from ablate.scienceqa.generator import (
    DEFAULT_SIZES, MARKER_FILE, easy_vqa_pictures, ensure_scienceqa, majority_baseline, majority_letter,
    make_scienceqa,
)

SMALL = {"n_train": 140, "n_val": 28, "n_test": 42}
COLUMNS = {"NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return make_scienceqa(tmp_path_factory.mktemp("sqa") / "tiny", seed=0, **SMALL)


def test_two_runs_are_byte_identical_and_seeds_differ(generated, tmp_path):
    again = make_scienceqa(tmp_path / "again", seed=0, **SMALL)
    for name in ("problems.json", "pid_splits.json"):
        assert (again / name).read_bytes() == (generated / name).read_bytes()
    images = sorted(p.relative_to(generated) for p in (generated / "images").rglob("*.png"))
    assert images == sorted(p.relative_to(again) for p in (again / "images").rglob("*.png"))
    assert all((generated / p).read_bytes() == (again / p).read_bytes() for p in images)
    other = make_scienceqa(tmp_path / "other", seed=1, **SMALL)
    assert (other / "problems.json").read_bytes() != (generated / "problems.json").read_bytes()


def test_layout_is_scienceqa(generated):
    problems = json.loads((generated / "problems.json").read_text())
    splits = json.loads((generated / "pid_splits.json").read_text())
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 140, "val": 28, "test": 42, "trainval": 168, "minival": 7, "minitest": 11}
    assert set(splits["minival"]) <= set(splits["val"]) and set(splits["minitest"]) <= set(splits["test"])
    assert sorted(splits["train"] + splits["val"] + splits["test"], key=int) == sorted(problems, key=int)
    for split in ("train", "val", "test"):
        for pid in splits[split]:
            p = problems[pid]
            assert sqa.problem_error(p) is None and p["split"] == split
            assert list(p) == ["question", "choices", "answer", "hint", "image", "task", "grade", "subject",
                               "topic", "category", "skill", "lecture", "solution", "split"]
            assert 2 <= len(p["choices"]) <= 5 and len(set(p["choices"])) == len(p["choices"])
            assert p["lecture"] and p["solution"]
            # the explanation reaches the answer: it names the right option
            assert p["choices"][p["answer"]].lower() in p["solution"].lower()
            image = generated / "images" / split / pid / "image.png"
            assert image.is_file() == (p["image"] == "image.png")
            if p["image"]:
                assert Image.open(image).size == (64, 64)
    assert not (generated / "images" / "minival").exists()


def test_every_category_is_populated_in_every_split(generated):
    problems = json.loads((generated / "problems.json").read_text())
    splits = json.loads((generated / "pid_splits.json").read_text())
    for split in ("train", "val", "test"):
        seen, choice_counts = set(), set()
        for pid in splits[split]:
            meta = sqa.category_meta(pid, problems[pid])
            seen.update(record_columns(meta))
            seen.add("TXT+IMG" if meta["has_hint"] and meta["has_image"] else "")
            seen.add("TXT only" if meta["has_hint"] and not meta["has_image"] else "")
            choice_counts.add(meta["num_choices"])
        assert COLUMNS | {"TXT+IMG", "TXT only"} <= seen, split
        if split == "train":
            assert choice_counts == {2, 3, 4, 5}


def test_val_and_test_images_are_not_training_images():
    train = {p.path for p in easy_vqa_pictures("train")}
    held_out = easy_vqa_pictures("test")
    assert len(held_out) > 500 and not train & {p.path for p in held_out}


def test_the_data_source_reads_it(generated):
    source = registries().data_source.get("scienceqa").build({"root": str(generated), "split": "val"})
    samples = source.samples()
    assert len(samples) == 28 and source.skipped == []
    with_images = [s for s in samples if s["image"]]
    assert with_images and all(os.path.isfile(s["image"]) for s in with_images)
    assert all(s["conversations"][0]["value"].startswith("<image>\n") for s in with_images)
    assert all(s["conversations"][1]["value"].endswith(f"The answer is {s['meta']['answer_letter']}.")
               for s in samples)


def test_refuses_to_overwrite_unless_asked(generated, tmp_path):
    with pytest.raises(AblateError, match="not empty"):
        make_scienceqa(generated, **SMALL)
    out = make_scienceqa(tmp_path / "o", n_train=20, n_val=5, n_test=5)
    make_scienceqa(out, n_train=14, n_val=0, n_test=0, overwrite=True)
    splits = json.loads((out / "pid_splits.json").read_text())
    assert (len(splits["train"]), splits["val"]) == (14, [])
    assert not (out / "images" / "val").exists()


def test_ensure_builds_once_under_ablate_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    start = time.monotonic()
    root = ensure_scienceqa()
    assert time.monotonic() - start < 30
    assert root == tmp_path / "home" / "data" / "scienceqa-tiny"
    splits = json.loads((root / "pid_splits.json").read_text())
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == tuple(DEFAULT_SIZES.values())
    stamp = (root / "problems.json").stat().st_mtime_ns
    assert ensure_scienceqa() == root and (root / "problems.json").stat().st_mtime_ns == stamp
    # an older generator's copy is replaced, and nothing is left beside it
    marker = json.loads((root / MARKER_FILE).read_text())
    (root / MARKER_FILE).write_text(json.dumps({**marker, "version": 0}))
    assert ensure_scienceqa() == root
    assert json.loads((root / MARKER_FILE).read_text()) == marker
    assert sorted(p.name for p in root.parent.iterdir()) == ["scienceqa-tiny"]
    # the data source uses it when no root is given
    source = registries().data_source.get("scienceqa").build({"split": "minitest"})
    assert len(source.samples()) == 250


def test_majority_baseline_by_hand(tmp_path):
    letters = {"1": 1, "2": 1, "3": 0, "4": 2, "5": 1, "6": 0, "7": 1}  # train: B B A C; test: B A B
    problems = {pid: problem(f"q{pid}", ["x", "y", "z"], a, split="train" if int(pid) <= 4 else "test")
                for pid, a in letters.items()}
    root = write_scienceqa(tmp_path / "d", problems, {"train": ["1", "2", "3", "4"], "test": ["5", "6", "7"]})
    assert majority_letter(root) == "B"
    assert majority_baseline(root, "test") == pytest.approx(200 / 3)
    assert majority_baseline(root, "train") == 50.0


def test_majority_baseline_on_the_generated_data(generated):
    problems = json.loads((generated / "problems.json").read_text())
    splits = json.loads((generated / "pid_splits.json").read_text())
    letter = majority_letter(generated)
    hits = sum("ABCDE"[problems[pid]["answer"]] == letter for pid in splits["test"])
    assert majority_baseline(generated, "test") == pytest.approx(100 * hits / 42)
    assert 20 < majority_baseline(generated, "test") < 60  # far from a model that reads the question
