"""Training throughput on mix665k-shaped data: ablate (packing) vs transformers' LLaVA (padded).

(a) ablate: `VLMTrainer` with LLaVA's modality-length sampler (`group_by_modality_length`) and
    padding-free batches (`packing: true`), loss `auto`;
(b) transformers' `LlavaForConditionalGeneration` with `Trainer`, right-padded batches and the
    same modality-length grouping, installed as the LLaVA repo installs it (a Trainer whose
    `_get_train_sampler` returns it). Its inputs hold the image token once per visual token.

Both start from the same weights (benchmarks/train_step.py builds ablate's model through its
registries and a LLaVA model holding a copy of its weights), train on the same samples in the
same order (one sampler, one seed), with AdamW at a constant learning rate, for the same
optimizer steps, so they see the same supervised tokens; the script checks that their final
losses agree within 1% and prints supervised (scored) tokens per second for each, from the step
times after the first step (data loading and collation included). On a CPU the seconds are the
process's CPU seconds (one thread, so at most one core: on an idle machine they equal the wall
clock, which is printed too), because other processes on a shared machine stretch the wall clock
of whichever run they meet; on a GPU they are wall-clock seconds. Runs alternate (a, b, b, a, ...).

The samples come from a generator shaped like LLaVA-1.5's llava_v1_5_mix665k.json: its parts
and their shares (about 6% text-only ShareGPT), multi-turn records with each part's turn and
word counts (`ablate.data.paper_data`, as `benchmarks/mix665k_shape.py` writes them), about
1.3 tokens a word, vicuna_v1's system prompt and roles, answers supervised and everything else
masked, cut at max_length after the visual tokens are counted in.

    python benchmarks/throughput.py                      # CPU, fp32, 1 thread, tiny shapes
    python benchmarks/throughput.py --device cuda --preset llava-7b --dtype bf16 --stage 1

The last line printed is `ratio <ablate tokens/s over llava tokens/s>`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mix665k_shape  # noqa: E402  (puts the repository on sys.path)
import train_step  # noqa: E402

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX  # noqa: E402

SYSTEM_TOKENS = 35  # vicuna_v1's system prompt, in Llama tokens
ROLE_TOKENS = 3  # "USER:" / "ASSISTANT:"
TOKENS_PER_WORD = 1.3  # Vicuna's tokenizer on English text
BOS, EOS = 1, 2
LOSS_TOLERANCE = 0.01  # relative difference allowed between the two final losses
MODELS = ("ablate", "llava")


@dataclass
class Sample:
    id: str
    input_ids: list[int]  # ablate's: one IMAGE_TOKEN_INDEX where the image goes
    labels: list[int]
    image: bool
    words: int  # LLaVA's length estimate: the words of every turn

    def llava(self, image_token_id: int, visual_tokens: int) -> tuple[list[int], list[int]]:
        """(input_ids, labels) as LLaVA's model takes them: the image token once per visual token."""
        if not self.image:
            return self.input_ids, self.labels
        at = self.input_ids.index(IMAGE_TOKEN_INDEX)
        ids = self.input_ids[:at] + [image_token_id] * visual_tokens + self.input_ids[at + 1:]
        return ids, self.labels[:at] + [IGNORE_INDEX] * visual_tokens + self.labels[at + 1:]

    def scored(self) -> int:
        """Tokens the causal-LM loss scores (every label but the first)."""
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


def mix665k_samples(count: int, *, seed: int, vocab: int, visual_tokens: int, max_length: int) -> list[Sample]:
    """`count` tokenized mix665k-shaped samples; ids are drawn from [3, vocab - 1) (the last id is
    LLaVA's image token). Records longer than max_length are cut there, as LLaVA cuts them; one
    that the cut leaves without its image or an answer token is drawn again."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    index = 0
    while len(samples) < count:
        part = rng.choices(mix665k_shape.PARTS, mix665k_shape.SHARES)[0]
        record = mix665k_shape.make_record(rng, part, index)
        index += 1
        sample = _tokenized(record, rng, vocab, visual_tokens, max_length)
        if sample is not None:
            samples.append(sample)
    return samples


def _tokenized(record: dict, rng: random.Random, vocab: int, visual_tokens: int, max_length: int) -> Sample | None:
    def tokens(count: float) -> list[int]:
        return rng.choices(range(3, vocab - 1), k=max(1, round(count)))

    image = "image" in record
    keep = max_length - (visual_tokens - 1 if image else 0)  # the LLM's max_length, visual tokens counted
    ids = [BOS] + tokens(SYSTEM_TOKENS)
    labels = [IGNORE_INDEX] * len(ids)
    words = sum(len(turn["value"].replace("<image>", " ").split()) for turn in record["conversations"])
    for turn in record["conversations"]:
        if len(ids) >= keep:  # what follows would be cut
            break
        content = tokens(len(turn["value"].replace("<image>", " ").split()) * TOKENS_PER_WORD)
        if "<image>" in turn["value"]:  # before or after the question, as the record has it
            first = turn["value"].startswith("<image>")
            content = [IMAGE_TOKEN_INDEX] + content if first else content + [IMAGE_TOKEN_INDEX]
        role = tokens(ROLE_TOKENS)
        if turn["from"] == "gpt":
            ids += role + content + [EOS]
            labels += [IGNORE_INDEX] * len(role) + content + [EOS]
        else:
            ids += role + content
            labels += [IGNORE_INDEX] * (len(role) + len(content))
    ids, labels = ids[:keep], labels[:keep]
    if (image and IMAGE_TOKEN_INDEX not in ids) or all(label == IGNORE_INDEX for label in labels[1:]):
        return None
    return Sample(record["id"], ids, labels, image, words)


# ---- the two trainers -----------------------------------------------------------------------


def modality_sampler(samples: list[Sample], batch_size: int, seed: int):
    """LLaVA's modality-length-grouped sampler (ablate's implementation of it), one rank, no accumulation."""
    from ablate.train.sampler import ModalityLengthGroupedSampler

    return ModalityLengthGroupedSampler([s.words for s in samples], [s.image for s in samples],
                                        batch_size=batch_size, world_size=1, seed=seed)


class LlavaTrainer(Trainer):
    """transformers' Trainer with LLaVA's sampler, as LLaVA's LLaVATrainer installs it."""

    def __init__(self, *args, samples: list[Sample], **kwargs):
        self.samples = samples
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return modality_sampler(self.samples, self.args.train_batch_size, self.args.seed)


class LlavaCollator:
    """LLaVA's supervised collator: right-padded ids and labels, the batch's images stacked."""

    def __init__(self, processor, image_token_id: int, visual_tokens: int, image: Path):
        self.processor, self.image_token_id, self.visual_tokens, self.image = processor, image_token_id, visual_tokens, image

    def __call__(self, rows: list[dict]) -> dict:
        from PIL import Image
        from torch.nn.utils.rnn import pad_sequence

        pairs = [Sample(**row).llava(self.image_token_id, self.visual_tokens) for row in rows]
        ids = pad_sequence([torch.tensor(i) for i, _ in pairs], batch_first=True, padding_value=0)
        labels = pad_sequence([torch.tensor(lab) for _, lab in pairs], batch_first=True, padding_value=IGNORE_INDEX)
        batch = {"input_ids": ids, "labels": labels,
                 "attention_mask": pad_sequence([torch.ones(len(i), dtype=torch.long) for i, _ in pairs], batch_first=True)}
        images = [Image.open(self.image).convert("RGB") for row in rows if row["image"]]
        if images:
            batch["pixel_values"] = self.processor(images, return_tensors="pt")["pixel_values"]
        return batch


def ablate_rows(samples: list[Sample], image: Path):
    """The samples as the rows of ablate's data pipeline (input_ids, labels, image path, id, length)."""
    from datasets import Dataset

    return Dataset.from_list([{"input_ids": s.input_ids, "labels": s.labels, "id": s.id,
                               "image": str(image) if s.image else None, "modality_length": s.words}
                              for s in samples])


class StepClock(TrainerCallback):
    """Wall-clock and CPU seconds between consecutive optimizer-step ends (the first from the start
    of training). The process's CPU time is what a CPU run costs whatever else the machine runs."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.last = (0.0, 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        now = (time.perf_counter(), time.process_time())
        self.wall.append(now[0] - self.last[0])
        self.cpu.append(now[1] - self.last[1])
        self.last = now


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---- one run of each ------------------------------------------------------------------------


@dataclass
class Options:
    steps: int = 6
    batch: int = 16
    max_length: int = 2048
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "fp32"
    repeats: int = 2
    packing: bool = True  # False: ablate on padded batches, as before packing existed
    loss: str = "auto"


@dataclass
class Run:
    wall_seconds: list[float]  # per step
    cpu_seconds: list[float]
    losses: list[float]


def training_arguments(options: Options, output_dir: Path):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=options.batch, max_steps=options.steps,
        learning_rate=options.lr, lr_scheduler_type="constant", optim="adamw_torch", weight_decay=0.0,
        max_grad_norm=1.0, seed=options.seed, data_seed=options.seed, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        bf16=options.dtype == "bf16", use_cpu=options.device == "cpu",
    )


def train_once(name: str, model, setup: dict, options: Options, workdir: Path) -> Run:
    """Train `model` for the steps from its initial weights; its step times and logged losses."""
    from transformers.trainer_callback import PrinterCallback

    from ablate.train.trainer import VLMTrainer

    restore(model, setup["initial"][name])
    clock = StepClock()
    args = training_arguments(options, workdir / name)
    if name == "ablate":
        trainer = VLMTrainer(model=model, args=args, train_dataset=setup["rows"], data_collator=setup["collator"],
                             callbacks=[clock], group_by_modality_length=True)
    else:
        trainer = LlavaTrainer(model=model, args=args, train_dataset=setup["llava_rows"],
                               data_collator=setup["llava_collator"], callbacks=[clock], samples=setup["samples"])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    model.zero_grad(set_to_none=True)  # gradients and (with the Trainer) optimizer state go before the next run
    return Run(clock.wall, clock.cpu, losses)


def trainable_copy(model) -> dict[str, torch.Tensor]:
    """The weights training changes, copied where they can be put back from."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def restore(model, initial: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in initial:
                param.copy_(initial[name])


def steps_scored(samples: list[Sample], options: Options) -> list[int]:
    """Scored tokens of each optimizer step, in the order the shared sampler draws the samples."""
    order = list(modality_sampler(samples, options.batch, options.seed))
    return [sum(samples[i].scored() for i in order[k * options.batch:(k + 1) * options.batch])
            for k in range(options.steps)]


def positions(samples: list[Sample], options: Options, visual_tokens: int) -> tuple[int, int]:
    """(LLM positions holding a token, positions padded batches compute) over the steps."""
    order = list(modality_sampler(samples, options.batch, options.seed))
    real = padded = 0
    for k in range(options.steps):
        lengths = [len(samples[i].input_ids) + (visual_tokens - 1) * samples[i].image
                   for i in order[k * options.batch:(k + 1) * options.batch]]
        real, padded = real + sum(lengths), padded + len(lengths) * max(lengths)
    return real, padded


# ---- setup and report -----------------------------------------------------------------------


def build(sizes, options: Options, workdir: Path, *, stage: int = 2, frozen_dtype: str = "fp32",
          share_weights: bool = False) -> dict:
    """Both models, the samples and each model's rows and collator."""
    from dataclasses import asdict

    from PIL import Image

    from ablate.data.collate import VLMCollator
    from ablate.model.loss import resolve_loss_mode

    device = torch.device(options.device)
    models, _ = train_step.build_pair(sizes, 1, 8, device, workdir, stage=stage, frozen_dtype=frozen_dtype,
                                      share_weights=share_weights,
                                      checkpoint_dtype=torch.bfloat16 if options.dtype == "bf16" else torch.float32)
    vlm = models["ablate"]
    vlm.max_length, vlm.packing = options.max_length, options.packing
    vlm.loss_mode = resolve_loss_mode(options.loss, vlm.llm, cuda=device.type == "cuda", partitioned=False,
                                      where="throughput benchmark")
    image = workdir / "image.jpg"
    Image.new("RGB", (sizes.image_size, sizes.image_size), (120, 90, 60)).save(image)
    image_token_id = sizes.vocab - 1  # build_pair's
    samples = mix665k_samples(4 * options.steps * options.batch, seed=options.seed, vocab=sizes.vocab,
                              visual_tokens=sizes.visual_tokens, max_length=options.max_length)
    return {
        "models": models, "samples": samples,
        "initial": {name: trainable_copy(model) for name, model in models.items()},
        "rows": ablate_rows(samples, image),
        "collator": VLMCollator(vlm.tokenizer, vlm.image_processor),
        "llava_rows": [asdict(s) for s in samples],
        "llava_collator": LlavaCollator(vlm.image_processor, image_token_id, sizes.visual_tokens, image),
    }


def tokens_per_s(runs: list[Run], scored: list[int], clock: str) -> float:
    """Scored tokens per second of `clock` ("wall" or "cpu") over every run's steps but its first (warm-up)."""
    seconds = sum(sum(getattr(run, f"{clock}_seconds")[1:]) for run in runs)
    return sum(sum(scored[1:]) for _ in runs) / seconds


def measure(options: Options, setup: dict, workdir: Path) -> dict[str, list[Run]]:
    """Every run of both, alternating which goes first."""
    runs: dict[str, list[Run]] = {name: [] for name in MODELS}
    for repeat in range(options.repeats):
        for name in MODELS if repeat % 2 == 0 else MODELS[::-1]:
            runs[name].append(train_once(name, setup["models"][name], setup, options, workdir))
    return runs


def report(options: Options, setup: dict, runs: dict[str, list[Run]], visual_tokens: int) -> float:
    """Print the figures; the ratio of ablate's tokens/s to LLaVA's. SystemExit when the final
    losses differ by more than LOSS_TOLERANCE (then the two did not do the same training)."""
    scored = steps_scored(setup["samples"], options)
    real, padded = positions(setup["samples"], options, visual_tokens)
    text_only = sum(not s.image for s in setup["samples"]) / len(setup["samples"])
    print(f"{len(setup['samples'])} mix665k-shaped samples ({100 * text_only:.1f}% text-only); {options.steps} steps "
          f"of {options.batch}: {sum(scored)} scored tokens, {real} LLM tokens, {padded} positions padded "
          f"({100 * (1 - real / padded):.0f}% padding)")
    # On a CPU the process's CPU seconds (one thread: at most one core) are the measure: other
    # processes on the machine change the wall clock, not them. On a GPU, the wall clock.
    clock = "cpu" if options.device == "cpu" else "wall"
    speed, final = {}, {}
    for name in MODELS:
        speed[name] = tokens_per_s(runs[name], scored, clock)
        final[name] = runs[name][0].losses[-1]
        steps = [t for run in runs[name] for t in getattr(run, f"{clock}_seconds")[1:]]
        wall = f" ({tokens_per_s(runs[name], scored, 'wall'):.1f} per wall-clock second)" if clock == "cpu" else ""
        print(f"{name:>7}: {speed[name]:9.1f} supervised tokens per {clock} second{wall}, median step "
              f"{statistics.median(steps):.2f} s over {len(runs[name])} run(s); final loss {final[name]:.6f}, "
              f"mean loss {statistics.mean(runs[name][0].losses):.6f}")
    difference = abs(final["ablate"] - final["llava"]) / abs(final["llava"])
    print(f"final losses differ by {100 * difference:.4f}% (allowed {100 * LOSS_TOLERANCE:.0f}%)")
    if not difference <= LOSS_TOLERANCE or not all(math.isfinite(v) for v in final.values()):
        raise SystemExit("the two final losses differ: not the same training")
    return speed["ablate"] / speed["llava"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=Options.steps, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=Options.batch, help="samples per step (LLaVA-1.5: 16 per GPU)")
    parser.add_argument("--max-length", type=int, default=Options.max_length, help="LLM tokens per sample, at most")
    parser.add_argument("--repeats", type=int, default=Options.repeats, help="runs of each, alternating")
    parser.add_argument("--lr", type=float, default=Options.lr)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: the Trainer's bf16 autocast")
    parser.add_argument("--preset", choices=tuple(train_step.PRESETS), default="tiny")
    parser.add_argument("--llm-layers", type=int, default=None, help="override the preset's LLM depth")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2, help="1: LLM frozen; 2: connector + LLM")
    parser.add_argument("--frozen-dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1; 0: torch's default)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the random checkpoints go")
    parser.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True,
                        help="ablate's padding-free batches (--no-packing: padded, as before they existed)")
    parser.add_argument("--loss", choices=("auto", "plain", "chunked", "fused"), default="auto", help="ablate's loss")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.frozen_dtype == "bf16" and args.dtype != "bf16":
        parser.error("--frozen-dtype bf16 needs --dtype bf16")
    options = Options(steps=args.steps, batch=args.batch, max_length=args.max_length, lr=args.lr, seed=args.seed,
                      device=args.device, dtype=args.dtype, repeats=args.repeats, packing=args.packing, loss=args.loss)
    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    sizes = train_step.PRESETS[args.preset]
    if args.llm_layers:
        sizes = replace(sizes, llm_layers=args.llm_layers)
    print(f"device {args.device}, {args.dtype}, {torch.get_num_threads()} thread(s); {sizes.llm_layers}-layer LLM x "
          f"{sizes.llm_hidden}, vocab {sizes.vocab}, {sizes.visual_tokens} visual tokens; stage {args.stage}; ablate: "
          f"{'packing' if args.packing else 'padded batches'}, loss {args.loss}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        setup = build(sizes, options, Path(tmp), stage=args.stage, frozen_dtype=args.frozen_dtype,
                      share_weights=args.preset != "tiny")
        runs = measure(options, setup, Path(tmp))
    ratio = report(options, setup, runs, sizes.visual_tokens)
    print(f"ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
