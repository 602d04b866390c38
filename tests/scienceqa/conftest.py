import pytest
from sqa_helpers import problem, write_scienceqa


@pytest.fixture
def small_sqa(tmp_path):
    problems = {
        "10": problem("What color is the shape?", ["red", "blue"], 0, image="image.png", hint="Look closely."),
        "11": problem("Which word names a shape?", ["dog", "circle", "soup"], 1, subject="language science",
                      grade="grade9"),
        "12": problem("Which is opposite to north?", ["east", "south"], 1, split="val", subject="social science",
                      image="image.png"),
        "13": problem("Which is a color?", ["teal", "cup"], 0, split="val"),
    }
    splits = {"train": ["10", "11"], "val": ["12", "13"], "minival": ["12"], "test": []}
    return write_scienceqa(tmp_path / "sqa", problems, splits)
