"""Published training times a plan is compared with (never used to make the estimate).

LLaVA's README (Train section) gives LLaVA-1.5's times on one node of 8 x A100-80G: pretraining
about 3.5 h (7B) and 5.5 h (13B), visual instruction tuning about 20 h (13B). A stage matches a
figure when its LLM, its data file, the GPU and the GPU count are the figure's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class Published:
    what: str
    hours: float
    llm: str  # the checkpoint's name (last path part)
    data: str  # a data file the stage names (last path part)
    gpu: str
    gpus: int
    source: str = "LLaVA README, 8 x A100-80G"


PUBLISHED = (
    Published("LLaVA-1.5 7B pretraining", 3.5, "vicuna-7b-v1.5", "blip_laion_cc_sbu_558k.json", "a100-80g", 8),
    Published("LLaVA-1.5 13B pretraining", 5.5, "vicuna-13b-v1.5", "blip_laion_cc_sbu_558k.json", "a100-80g", 8),
    Published("LLaVA-1.5 13B fine-tuning", 20.0, "vicuna-13b-v1.5", "llava_v1_5_mix665k.json", "a100-80g", 8),
)


def published_for(llm: str, data_files: list[str], gpu: str, gpus: int) -> Published | None:
    names = {PurePath(f).name for f in data_files}
    return next((p for p in PUBLISHED if PurePath(llm).name == p.llm and p.data in names
                 and p.gpu == gpu and p.gpus == gpus), None)
