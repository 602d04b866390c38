"""The paper data sets' documented sizes and shapes, for sizing a run whose data files are absent.

`ablate plan` counts a stage's records from its data files when they are on the machine. When
they are not, it takes the figures here, found by the file or folder a data block names (its
trailing path parts). Counts are the released files' record counts where they are known exactly
(LCS-558K 558,128; CC-595K 595,375; llava_instruct_150k.json 157,712; mix665k 665,298; ScienceQA
train 12,726), otherwise the papers' rounded figures (the three LLaVA-Instruct files: 58K, 23K,
77K). Shapes (question-answer pairs per record, words per turn) say what a typical record of
each part looks like: a model of the data, not a measurement. `benchmarks/mix665k_shape.py`
draws its mix665k-shaped file from the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Part:
    """One kind of record in a data set."""

    name: str
    weight: int  # its share of the data set's records, as a count (mix665k: thousands, LLaVA-1.5's Table 7)
    image: bool  # whether its records hold an image
    pairs: tuple[int, int]  # question-answer pairs per record (inclusive range)
    question: tuple[int, int]  # words per human turn
    answer: tuple[int, int]  # words per gpt turn
    style: str = "free"  # free | vqa | mc | box: how benchmarks/mix665k_shape.py writes its turns

    @property
    def mean_pairs(self) -> float:
        return sum(self.pairs) / 2

    @property
    def mean_question_words(self) -> float:
        return sum(self.question) / 2

    @property
    def mean_answer_words(self) -> float:
        return sum(self.answer) / 2


@dataclass(frozen=True)
class PaperData:
    name: str
    names: tuple[str, ...]  # trailing path parts a data block names it by, e.g. "ScienceQA"
    records: int
    parts: tuple[Part, ...]
    source: str  # where `records` comes from
    split: str | None = None  # for a folder holding several splits (ScienceQA)

    def shares(self) -> list[tuple[Part, float]]:
        """Each part with its share of the records."""
        total = sum(part.weight for part in self.parts)
        return [(part, part.weight / total) for part in self.parts]


# LLaVA-Instruct-158K's three kinds (also the first three parts of mix665k).
CONVERSATION = Part("llava_conversation", 58, True, (1, 5), (5, 20), (15, 150))
DETAIL = Part("llava_detail", 23, True, (1, 1), (6, 12), (80, 250))
REASONING = Part("llava_reasoning", 77, True, (1, 1), (8, 30), (50, 220))
MIX665K_PARTS = (
    CONVERSATION, DETAIL, REASONING,
    Part("sharegpt", 40, False, (1, 10), (3, 200), (1, 600)),
    Part("vqav2", 83, True, (1, 10), (4, 12), (1, 3), "vqa"),
    Part("gqa", 72, True, (1, 10), (5, 16), (1, 3), "vqa"),
    Part("okvqa", 9, True, (1, 3), (5, 14), (1, 3), "vqa"),
    Part("ocrvqa", 80, True, (1, 10), (3, 8), (1, 8), "vqa"),
    Part("aokvqa", 66, True, (1, 2), (8, 20), (1, 1), "mc"),
    Part("textcaps", 22, True, (1, 1), (6, 10), (8, 25)),
    Part("refcoco", 48, True, (1, 10), (2, 10), (4, 4), "box"),
    Part("vg", 87, True, (1, 10), (2, 10), (4, 4), "box"),
)
# Stage-1 captions: one instruction ("Describe the image briefly.") and a short caption.
CAPTION = Part("caption", 1, True, (1, 1), (4, 10), (5, 20))

PAPER_DATA = (
    PaperData("LCS-558K", ("blip_laion_cc_sbu_558k.json",), 558_128, (CAPTION,),
              "LLaVA-1.5's stage-1 data, blip_laion_cc_sbu_558k.json"),
    PaperData("CC-595K", ("LLaVA-CC3M-Pretrain-595K/chat.json",), 595_375, (CAPTION,),
              "LLaVA's stage-1 data, LLaVA-CC3M-Pretrain-595K/chat.json"),
    PaperData("LLaVA-Instruct-158K", ("llava_instruct_150k.json",), 157_712, (CONVERSATION, DETAIL, REASONING),
              "llava_instruct_150k.json"),
    PaperData("LLaVA-Instruct conversation", ("conversation_58k.json",), 58_000, (CONVERSATION,),
              "the LLaVA paper's 58K"),
    PaperData("LLaVA-Instruct detail", ("detail_23k.json",), 23_000, (DETAIL,), "the LLaVA paper's 23K"),
    PaperData("LLaVA-Instruct complex reasoning", ("complex_reasoning_77k.json",), 77_000, (REASONING,),
              "the LLaVA paper's 77K"),
    PaperData("LLaVA-1.5 mix665k", ("llava_v1_5_mix665k.json",), 665_298, MIX665K_PARTS,
              "llava_v1_5_mix665k.json; parts as LLaVA-1.5's Table 7"),
    # ScienceQA train: 12,726 problems, 6,218 with an image; the QCM-LEA answer carries the lecture
    # and the explanation, hence the long answers.
    PaperData("ScienceQA train", ("ScienceQA",), 12_726,
              (Part("image", 6_218, True, (1, 1), (15, 90), (40, 260)),
               Part("text", 6_508, False, (1, 1), (15, 90), (40, 260))),
              "ScienceQA's pid_splits.json, train", split="train"),
)


def documented(path: str, split: str | None = None) -> PaperData | None:
    """The documented data set a data block's file or folder `path` names (by its trailing parts)."""
    parts = PurePath(path).parts
    for data in PAPER_DATA:
        for name in data.names:
            tail = PurePath(name).parts
            if parts[-len(tail):] == tail and (data.split is None or data.split == split):
                return data
    return None
