"""The recipe: a pydantic model of one whole experiment. Unknown keys are errors everywhere."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ablate.recipe.component import Component


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# --- model -----------------------------------------------------------------------------------


class ModelSection(Strict):
    encoder: Component("encoder")
    connector: Component("connector")
    llm: Component("llm")
    init_connector: str | None = Field(
        None, description="safetensors file (or run folder) with connector weights to start from, "
        "like LLaVA's pretrain_mm_mlp_adapter",
    )


# --- training stages -------------------------------------------------------------------------


class LoraFields(Strict):
    """peft LoraConfig fields."""

    r: int = Field(8, gt=0)
    lora_alpha: int = 16
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[list[str], str] = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"


class Lora(Strict):
    lora: LoraFields = LoraFields()


Trainable = Union[Literal["frozen", "full"], Lora]


class StageTrainable(Strict):
    encoder: Trainable = "frozen"
    connector: Trainable = "full"
    llm: Trainable = "frozen"


Scheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay",
]


class Stage(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: Component("mixture")
    template: Component("template")
    trainable: StageTrainable = StageTrainable()
    lr: float = Field(gt=0)
    connector_lr: float | None = Field(None, gt=0, description="like LLaVA's mm_projector_lr")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(8, gt=0, description="per device")
    grad_accum: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    scheduler: Scheduler = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    optimizer: str = "adamw_torch"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    max_length: int = Field(2048, gt=0)
    seed: int | None = Field(None, description="defaults to the recipe's seed")
    deepspeed: str | dict[str, Any] | None = Field(None, description="ZeRO config: JSON file path or inline dict")
    logging_steps: int = Field(10, gt=0)
    save_steps: int | None = Field(None, gt=0, description="checkpoint every N steps (default: each epoch)")
    save_total_limit: int | None = Field(2, gt=0)
    dataloader_workers: int = Field(0, ge=0)
    group_by_length: bool = False


# --- data, eval, tracking --------------------------------------------------------------------


class DataSection(Strict):
    on_bad_sample: Literal["error", "skip"] = "error"
    cache_dir: str | None = Field(None, description="HF datasets cache for tokenized data")
    num_proc: int | None = Field(None, gt=0)
    feature_cache: bool = Field(
        True, description="encode each image once with a frozen encoder and read its features from "
        "$ABLATE_HOME/features afterwards (later epochs, stages, trials); false encodes every batch",
    )


class EvalSection(Strict):
    data: Component("data_source")
    template: Component("template") | None = Field(None, description="defaults to the last stage's")
    evaluator: Component("evaluator") = "exact_match"
    max_new_tokens: int = Field(16, gt=0)
    batch_size: int = Field(32, gt=0)
    limit: int | None = Field(None, gt=0, description="evaluate only the first N items")
    each_epoch: bool = Field(False, description="also evaluate after every epoch of the last stage")


class TrackingSection(Strict):
    experiment: str = "ablate"
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    run_name: str | None = None
    tags: dict[str, str] = {}


class Recipe(Strict):
    name: str
    description: str = ""
    seed: int = 42
    output_dir: str = "runs"
    model: ModelSection
    answer_format: Component("answer_format") | None = Field(
        None, description="how sources that support it (ScienceQA) render questions and answers",
    )
    data: DataSection = DataSection()
    stages: list[Stage] = []
    eval: EvalSection | None = None
    tracking: TrackingSection = TrackingSection()

    @model_validator(mode="after")
    def _unique_stage_names(self) -> "Recipe":
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _answer_format_is_read_and_scorable(self) -> "Recipe":
        from ablate.recipe.compatibility import answer_format_problem

        if problem := answer_format_problem(self):
            raise ValueError(problem)
        return self

    def stage_seed(self, stage: Stage) -> int:
        return self.seed if stage.seed is None else stage.seed

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
