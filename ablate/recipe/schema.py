"""The recipe: a pydantic model of one whole experiment. Unknown keys are errors everywhere."""

from __future__ import annotations

from typing import Any, Literal, Union

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from ablate.config_model import MAX_TOKENS, MAX_WIDTH, NonBlank, StrictModel, repeated
from ablate.data.aspect_ratio import ImageAspectRatio
from ablate.paths import file_in_the_way
from ablate.recipe.component import Component

# Names that become folder names under output_dir: no separators, no "..", no leading dot.
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"

# Training and evaluation caps, generous (see config_model.MAX_TOKENS): a value past one is a typo.
MAX_EPOCHS = 1000  # LLaVA trains 1 epoch per stage; its ScienceQA fine-tune 12
MAX_STEPS = 10_000_000  # LLaVA-1.5's instruction tuning is ~5,200 steps
MAX_BATCH = 65_536  # per device (LLaVA: 16-32); likewise gradient accumulation (LLaVA: 1-4)
MAX_NEW_TOKENS = 32_768  # LLaVA's evaluation generates at most 1,024 (LLaVA-Bench)
MAX_LOADER_WORKERS = 256  # DataLoader processes per rank (LLaVA's scripts: 4); each is a fork


class Strict(StrictModel):
    """Unknown keys, non-finite numbers and booleans given for numbers are errors (StrictModel)."""


# --- model -----------------------------------------------------------------------------------


class ModelSection(Strict):
    encoder: Component("encoder")
    connector: Component("connector")
    llm: Component("llm")
    init_connector: NonBlank | None = Field(
        None, description="safetensors file (or run folder) with connector weights to start from, "
        "like LLaVA's pretrain_mm_mlp_adapter",
    )


# --- training stages -------------------------------------------------------------------------


class LoraFields(Strict):
    """peft LoraConfig fields."""

    r: int = Field(8, gt=0, le=MAX_WIDTH, description="a rank above the layer's width is no low-rank")
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[list[str], str] = Field("all-linear", min_length=1)
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
    name: str = Field(pattern=SAFE_NAME, max_length=100)
    data: Component("mixture")
    template: Component("template")
    trainable: StageTrainable = StageTrainable()
    lr: float = Field(gt=0)
    connector_lr: float | None = Field(None, gt=0, description="like LLaVA's mm_projector_lr")
    epochs: float = Field(1.0, gt=0, le=MAX_EPOCHS)
    max_steps: int = Field(-1, le=MAX_STEPS, description="> 0 overrides epochs; -1 trains by epochs")
    batch_size: int = Field(8, gt=0, le=MAX_BATCH, description="per device")
    grad_accum: int = Field(1, gt=0, le=MAX_BATCH)
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of the steps spent warming up; "
                                "1.0 would be read by the Trainer as one warm-up step")
    scheduler: Scheduler = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    optimizer: str = "adamw_torch"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    gradient_checkpointing: bool = False
    max_length: int = Field(2048, gt=0, le=MAX_TOKENS)
    seed: int | None = Field(None, ge=0, lt=2**32, description="defaults to the recipe's seed")
    deepspeed: NonBlank | dict[str, Any] | None = Field(None, description="ZeRO config: JSON file path or inline dict")
    logging_steps: int = Field(10, gt=0)
    save_steps: int | None = Field(None, gt=0, description="checkpoint every N steps (default: each epoch)")
    save_total_limit: int | None = Field(2, gt=0)
    dataloader_workers: int = Field(0, ge=0, le=MAX_LOADER_WORKERS,
                                    description="DataLoader worker processes (LLaVA's scripts: 4)")
    group_by_length: bool = Field(False, description="transformers' length-grouped batches (token counts)")
    group_by_modality_length: bool = Field(
        False, description="LLaVA-1.5's sampler: text-only and image batches apart, each grouped by LLaVA's "
        "word-count length estimate",
    )
    image_aspect_ratio: ImageAspectRatio = Field(
        "square", description="square: the image processor alone (LLaVA's default); pad: centred on a square of "
        "the processor's mean colour first (LLaVA-1.5); resize: to the processor's input size, no crop",
    )
    max_grad_norm: float | None = Field(
        1.0, ge=0, description="clip gradients to this norm, DeepSpeed stages included; null or 0: no clipping",
    )
    tf32: bool = Field(False, description="TF32 matmuls on Ampere or newer GPUs (LLaVA's --tf32 True); "
                       "ignored, with a note in the run summary, where there is none")
    packing: bool = Field(
        False, description="padding-free batches: each batch's samples (visual tokens spliced in) end to end, "
        "positions restarting and attention kept within each sample; the same samples per step and the same "
        "loss as padded batches, without computing the padding",
    )
    loss: Literal["auto", "plain", "chunked", "fused"] = Field(
        "auto", description="how the cross-entropy is computed: plain (the LLM's own, full-vocabulary logits), "
        "chunked (head + loss on the scored positions a chunk at a time), fused (Liger-kernel, CUDA); auto: "
        "fused where it can run, else chunked, else plain. Same loss and gradients each way",
    )

    @field_validator("max_grad_norm")
    @classmethod
    def _zero_means_no_clipping(cls, value: float | None) -> float | None:
        return value or None  # one spelling of "no clipping", so both give the same stage key

    @model_validator(mode="after")
    def _deepspeed_clips_by_max_grad_norm(self) -> "Stage":
        if isinstance(self.deepspeed, dict):
            from ablate.recipe.deepspeed import clipping_problem

            if problem := clipping_problem(self.deepspeed, self.max_grad_norm):
                raise ValueError(f"deepspeed: {problem}")
        return self

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if value == "adamw_torch":
            return value  # the default: spares importing transformers' training arguments
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if value not in names:
            from ablate.errors import did_you_mean

            raise ValueError(f"unknown optimizer {value!r}.{did_you_mean(value, names)} transformers offers: "
                             f"{', '.join(names)}")
        return value

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError(f"must be -1 (train for `epochs`) or a positive number of steps, got {value}")
        return value

    @model_validator(mode="after")
    def _one_sampler(self) -> "Stage":
        if self.group_by_length and self.group_by_modality_length:
            raise ValueError("group_by_length and group_by_modality_length are two samplers; set at most one")
        return self


# --- data, eval, tracking --------------------------------------------------------------------


class DataSection(Strict):
    on_bad_sample: Literal["error", "skip"] = "error"
    cache_dir: NonBlank | None = Field(None, description="where each source's samples are kept as Arrow "
                                  "files (default $ABLATE_HOME/datasets); tokenized as training reads them")
    feature_cache: bool = Field(
        True, description="encode each image once with a frozen encoder and read its features from "
        "$ABLATE_HOME/features afterwards (later epochs, stages, trials); false encodes every batch",
    )


    @field_validator("cache_dir")
    @classmethod
    def _cache_is_a_folder(cls, value: str | None) -> str | None:
        return value if value is None else checked_folder(value)


class JudgeSection(Strict):
    """The judge of lmms-eval's GPT-judged tasks (MM-Vet, LLaVA-Bench in the wild, ...), pinned."""

    model: NonBlank = Field(description="judge model name at the endpoint, e.g. gpt-4-0613 "
                       "(lmms-eval's MODEL_VERSION)")
    endpoint: str = Field(pattern=r"^https?://\S+$", description="OpenAI-compatible API root, e.g. "
                          "https://api.openai.com/v1")
    api_key_env: NonBlank = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    cache_dir: NonBlank | None = Field(None, description="judge replies kept here, shared with ablate's "
                                  "own judge (default: $ABLATE_HOME/judge_cache)")


# Fields only one harness reads: {field: harness}. `data`, `evaluator` and `max_new_tokens` stay
# allowed with lmms_eval (unused, except max_new_tokens as a fallback) so that `-s eval.harness=
# lmms_eval` switches a recipe's harness without removing its ablate eval.
HARNESS_ONLY = {"tasks": "lmms_eval", "include_path": "lmms_eval", "judge": "lmms_eval", "each_epoch": "ablate"}


class EvalSection(Strict):
    harness: Literal["ablate", "lmms_eval"] = Field(
        "ablate", description="ablate: generate on eval.data and score with eval.evaluator; lmms_eval: run "
        "lmms-eval's tasks (eval.tasks) on the trained model, in the same process",
    )
    data: Component("data_source") | None = Field(None, description="the held-out samples (harness ablate)")
    template: Component("template") | None = Field(None, description="defaults to the last stage's")
    evaluator: Component("evaluator") = Field("exact_match", validate_default=True)
    max_new_tokens: int = Field(16, gt=0, le=MAX_NEW_TOKENS,
                                description="lmms_eval: only for tasks whose generation_kwargs set none")
    batch_size: int = Field(32, gt=0, le=MAX_BATCH)
    limit: int | None = Field(None, gt=0, description="evaluate only the first N items (lmms_eval: of each task)")
    each_epoch: bool = Field(False, description="also evaluate after every epoch of the last stage")
    option_scoring: bool = Field(
        False, description="also pick each multiple-choice item's option by log-likelihood (scienceqa): "
        "reported as <metric>_loglik beside the generated answers' metrics",
    )
    image_aspect_ratio: ImageAspectRatio | None = Field(
        None, description="defaults to the last stage's (LLaVA keeps it in the model config for its evaluation)",
    )
    tasks: list[NonBlank] | None = Field(None, min_length=1, description="lmms-eval task or group names, e.g. [gqa, mme]")
    include_path: list[NonBlank] | None = Field(
        None, min_length=1, description="folders of lmms-eval task YAMLs (lmms-eval's --include_path); their "
        "tasks win over lmms-eval's own of the same name",
    )
    judge: JudgeSection | None = Field(None, description="judge model and endpoint for GPT-judged lmms-eval tasks")

    @field_validator("include_path", mode="before")
    @classmethod
    def _one_path_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: list[str] | None) -> list[str] | None:
        if tasks and (dupes := repeated(tasks)):
            raise ValueError(f"tasks must be unique; repeated: {', '.join(dupes)}")
        return tasks

    @model_validator(mode="after")
    def _fields_fit_the_harness(self) -> "EvalSection":
        for name, harness in HARNESS_ONLY.items():
            if name in self.model_fields_set and getattr(self, name) not in (None, False) and self.harness != harness:
                raise ValueError(f"eval.{name} applies to harness {harness} only; this eval uses harness "
                                 f"{self.harness}" + ("" if harness == "ablate" else f" (set eval.harness: {harness})"))
        if self.harness == "ablate" and self.data is None:
            raise ValueError("eval.data is required with harness ablate (the samples to generate for)")
        if self.harness == "lmms_eval" and not self.tasks:
            raise ValueError("eval.tasks is required with harness lmms_eval, e.g. [gqa, mme]")
        return self


class TrackingSection(Strict):
    experiment: NonBlank = Field("ablate", max_length=500)  # MLflow's experiment name limits
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    run_name: NonBlank | None = None
    tags: dict[str, str] = {}

    @field_validator("tags")
    @classmethod
    def _mlflow_tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        if tags:  # MLflow's own check (importing mlflow costs seconds, so only when there are tags)
            from mlflow.exceptions import MlflowException
            from mlflow.utils.validation import _validate_tag_name

            for key in tags:
                try:
                    _validate_tag_name(key)
                except MlflowException as exc:
                    raise ValueError(f"tag {key!r}: {exc.message}") from None
        return tags

    @field_validator("tracking_uri")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        from ablate.tracking import tracking_uri_problem

        problem = None if value is None else tracking_uri_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class Recipe(Strict):
    name: str = Field(pattern=SAFE_NAME, max_length=100,
                      description="names the run folder <output_dir>/<name>-<hash>: letters, digits, _ . -")
    description: str = ""
    seed: int = Field(42, ge=0, lt=2**32, description="numpy and torch take seeds in [0, 2**32)")
    output_dir: NonBlank = "runs"
    model: ModelSection
    answer_format: Component("answer_format") | None = Field(
        None, description="how sources that support it (ScienceQA) render questions and answers",
    )
    data: DataSection = DataSection()
    stages: list[Stage] = []
    eval: EvalSection | None = None
    tracking: TrackingSection = TrackingSection()

    @field_validator("output_dir")
    @classmethod
    def _output_dir_is_a_folder(cls, value: str) -> str:
        return checked_folder(value)

    @model_validator(mode="after")
    def _unique_stage_names(self) -> "Recipe":
        if dupes := repeated(s.name for s in self.stages):
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

    def eval_aspect_ratio(self) -> str:
        """How evaluation prepares images: eval's own setting, else the last stage's."""
        if self.eval is not None and self.eval.image_aspect_ratio is not None:
            return self.eval.image_aspect_ratio
        return self.stages[-1].image_aspect_ratio if self.stages else "square"

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def checked_folder(value: str) -> str:
    """`value` if it is, or can be made, a folder: neither it nor a parent is an existing file."""
    blocker = file_in_the_way(Path(value).expanduser())
    if blocker is not None:
        raise ValueError(f"{blocker} is a file, not a folder")
    return value
