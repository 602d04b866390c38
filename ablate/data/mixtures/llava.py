"""Named mixtures of LLaVA's own training data.

LLaVA Table 4 (data-type ablation on LLaVA-Instruct-158K, evaluated on LLaVA-Bench):
  llava_instruct_full            conversation 58K + detail 23K + complex reasoning 77K
  llava_instruct_detail_complex  detail + complex reasoning
  llava_instruct_conv_5d_10c     conversation + 5% detail + 10% complex reasoning
  llava_instruct_conv_only       conversation only
and LLaVA-1.5's instruction mixture `llava_v1_5_mix665k`. The files are not shipped: each
arm checks its files and says what to download when one is missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from ablate.config_model import NonBlank
from ablate.data.contracts import DataSource
from ablate.data.sources.base import OnBadSample, check_on_bad_sample
from ablate.registry import ComponentConfig

INSTRUCT = "LLaVA-Instruct-158K"
INSTRUCT_REPO = "the liuhaotian/LLaVA-Instruct-150K data set on the Hugging Face Hub"
# config field -> (standard file name, data_type)
INSTRUCT_FILES = {
    "conversation": ("conversation_58k.json", "conversation"),
    "detail": ("detail_23k.json", "detail"),
    "complex_reasoning": ("complex_reasoning_77k.json", "reasoning"),
}


class LlavaInstructConfig(ComponentConfig):
    """Paths of the three LLaVA-Instruct-158K files; each arm needs only the ones it uses."""

    conversation: NonBlank | None = Field(None, description="path of conversation_58k.json")
    detail: NonBlank | None = Field(None, description="path of detail_23k.json")
    complex_reasoning: NonBlank | None = Field(None, description="path of complex_reasoning_77k.json")
    image_root: NonBlank = Field(description="COCO train2017 image folder")
    seed: int = 0
    shuffle: bool = True

    # (file field, share of it kept); set by each arm
    arm: ClassVar[tuple[tuple[str, float], ...]] = ()

    @model_validator(mode="after")
    def _needed_files(self) -> "LlavaInstructConfig":
        missing = [f for f, _ in self.arm if getattr(self, f) is None]
        if missing:
            names = ", ".join(f"{f} (path of {INSTRUCT_FILES[f][0]})" for f in missing)
            raise ValueError(f"this mixture needs {names}")
        return self


def _arm(name: str, parts: tuple[tuple[str, float], ...]) -> type[LlavaInstructConfig]:
    return type(f"{name}_config", (LlavaInstructConfig,), {"arm": parts, "__module__": __name__})


ARMS = {
    "llava_instruct_full": _arm("llava_instruct_full", (("conversation", 1.0), ("detail", 1.0), ("complex_reasoning", 1.0))),
    "llava_instruct_detail_complex": _arm("llava_instruct_detail_complex", (("detail", 1.0), ("complex_reasoning", 1.0))),
    "llava_instruct_conv_5d_10c": _arm("llava_instruct_conv_5d_10c", (("conversation", 1.0), ("detail", 0.05), ("complex_reasoning", 0.10))),
    "llava_instruct_conv_only": _arm("llava_instruct_conv_only", (("conversation", 1.0),)),
}


def _require(path: str, field: str, *, what: str, file_name: str, where: str) -> str:
    from ablate.data.sources.llava_json import data_file

    data_file(path, what=what, field=field, download=f"{file_name} from {where}")
    return path


def build_llava_instruct(
    config: LlavaInstructConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error"
) -> DataSource:
    """An arm of LLaVA's Table-4 data ablation over LLaVA-Instruct-158K."""
    from ablate.registry import registries

    check_on_bad_sample(on_bad_sample)
    items = []
    for field, share in config.arm:
        file_name, data_type = INSTRUCT_FILES[field]
        path = _require(getattr(config, field), field, what=INSTRUCT, file_name=file_name, where=INSTRUCT_REPO)
        source = {"type": "llava_json", "path": path, "image_root": config.image_root, "data_type": data_type}
        items.append({"source": source, "name": field, "fraction": share} if share < 1 else {"source": source, "name": field})
    inline = {"sources": items, "seed": config.seed, "shuffle": config.shuffle}
    return registries().mixture.get("inline").build(inline, answer_format=answer_format, on_bad_sample=on_bad_sample)


class Mix665kConfig(ComponentConfig):
    path: NonBlank = Field(description="path of llava_v1_5_mix665k.json")
    image_root: NonBlank = Field(description="folder holding coco/, gqa/, ocr_vqa/, textvqa/, vg/")
    limit: int | None = Field(None, gt=0)


def build_mix665k(config: Mix665kConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error") -> DataSource:
    """LLaVA-1.5's 665K instruction-tuning mixture."""
    from ablate.registry import registries

    check_on_bad_sample(on_bad_sample)
    _require(config.path, "path", what="LLaVA-1.5 mix665k", file_name="llava_v1_5_mix665k.json",
             where=f"{INSTRUCT_REPO} (images: COCO train2017, GQA, OCR-VQA, TextVQA, Visual Genome)")
    source = {"type": "llava_json", "path": config.path, "image_root": config.image_root, "limit": config.limit}
    return registries().data_source.get("llava_json").build(source, answer_format=answer_format, on_bad_sample=on_bad_sample)
