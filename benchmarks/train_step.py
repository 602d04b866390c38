"""Training-step throughput: ablate's VisionLanguageModel vs transformers' LlavaForConditionalGeneration.

Both models are the same function: a tiny CLIP vision tower (frozen, layer -2, CLS dropped),
a depth-2 gelu MLP connector and a tiny Llama, with ablate's weights copied into the LLaVA
model; the script checks that their losses agree on the batch before timing anything. One
step = forward + backward + AdamW step, with the connector and the LLM trainable. `--preset
llava-7b|llava-13b` takes LLaVA-1.5's shapes instead (CLIP ViT-L/14-336, a Vicuna-shaped Llama),
`--stage 1` freezes the LLM, and `--share-weights` (default for the presets) lets LLaVA hold
ablate's weights rather than a copy, so that a 7B pair fits on one GPU. Steps of
the two models are interleaved (A, B, B, A, ...) so load from other processes hits both
alike; medians are reported. On CPU it runs one intra-op thread unless told otherwise: on a
machine shared with other work that gives far steadier figures than oversubscribed threads
(see benchmarks/README.md).

    python benchmarks/train_step.py                      # CPU, fp32, 1 thread, defaults below
    python benchmarks/train_step.py --threads 0          # CPU with torch's default thread count
    python benchmarks/train_step.py --device cuda --dtype bf16 --batch 32
    python benchmarks/train_step.py --device cuda --dtype bf16 --preset llava-7b --stage 1 \
        --frozen-dtype bf16 --batch 8 --seq 449     # paper shapes, random weights (see README)

FLOPs per step come from torch.utils.flop_counter.FlopCounterMode over one forward+backward;
the peak is the best of a few large matmuls timed in the same process, in the same dtype.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

MODELS = ("ablate", "llava")
FAIRNESS_TOLERANCE = 1e-4  # fp32 loss difference allowed between the two models
BF16_TOLERANCE = 1e-2  # the same, when bf16 weights make the check run under bf16 autocast


@dataclass(frozen=True)
class Sizes:
    """Model sizes (defaults: ablate's zoo tiny-clip and tiny-llama)."""

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_intermediate: int = 512
    vision_layers: int = 4
    vision_heads: int = 4
    llm_hidden: int = 256
    llm_intermediate: int = 688
    llm_layers: int = 4
    llm_heads: int = 4
    vocab: int = 1024

    @property
    def visual_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _llava_sizes(vicuna: str) -> Sizes:
    """CLIP ViT-L/14 at 336 px (LLaVA-1.5's tower) with a Llama of Vicuna-7B or -13B shape, from the
    real checkpoints' shapes ablate keeps in one place (ablate.zoo.hub_layouts)."""
    from ablate.zoo.hub_layouts import CLIP_L_PATCH, CLIP_L_VISION, LLAMA_VOCAB, VICUNA_SHAPES

    llm = VICUNA_SHAPES[vicuna]
    return Sizes(image_size=336, patch_size=CLIP_L_PATCH, vision_hidden=CLIP_L_VISION["hidden_size"],
                 vision_intermediate=CLIP_L_VISION["intermediate_size"],
                 vision_layers=CLIP_L_VISION["num_hidden_layers"], vision_heads=CLIP_L_VISION["num_attention_heads"],
                 vocab=LLAMA_VOCAB, llm_hidden=llm["hidden_size"], llm_intermediate=llm["intermediate_size"],
                 llm_layers=llm["num_hidden_layers"], llm_heads=llm["num_attention_heads"])


PRESETS = {"tiny": Sizes(), "llava-7b": _llava_sizes("7b"), "llava-13b": _llava_sizes("13b")}


@dataclass
class Result:
    device: str
    dtype: str
    threads: int
    batch: int
    text_tokens: int
    llm_tokens: int  # per sample, after the splice
    steps: int
    losses_first_batch: dict[str, float]
    step_seconds: dict[str, list[float]] = field(default_factory=dict)
    flops_per_step: dict[str, int] = field(default_factory=dict)
    peak_gflops: float = 0.0
    stage: int = 2  # 1: connector trained, LLM frozen; 2: connector and LLM trained
    frozen_dtype: str = "fp32"
    grad_ckpt: bool = False
    share_weights: bool = False
    sizes: dict = field(default_factory=dict)
    peak_memory_gib: float = 0.0  # CUDA: max allocated over the whole run, both models resident

    def median(self, name: str) -> float:
        return statistics.median(self.step_seconds[name])

    def samples_per_s(self, name: str) -> float:
        return self.batch / self.median(name)

    def tokens_per_s(self, name: str) -> float:
        """LLM positions (text + visual) per second."""
        return self.samples_per_s(name) * self.llm_tokens

    @property
    def ratio(self) -> float:
        """ablate samples/s over llava samples/s, from the median step times (> 1: ablate is faster)."""
        return self.samples_per_s("ablate") / self.samples_per_s("llava")

    @property
    def paired_ratio(self) -> float:
        """Median over interleaved pairs of llava time / ablate time: steady under changing load."""
        pairs = zip(self.step_seconds["llava"], self.step_seconds["ablate"])
        return statistics.median(llava / ours for llava, ours in pairs)

    @property
    def best_ratio(self) -> float:
        """llava's fastest step time over ablate's fastest."""
        return min(self.step_seconds["llava"]) / min(self.step_seconds["ablate"])

    def gflops(self, name: str) -> float:
        return self.flops_per_step[name] / self.median(name) / 1e9


# ---- models --------------------------------------------------------------------------------


def _save_checkpoints(
    sizes: Sizes, folder: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[Path, Path]:
    """A CLIP vision tower and a Llama with its tokenizer, saved like any local checkpoint.

    Weights are drawn on `device` (a GPU draws 7B of them in seconds), in `dtype`, and saved."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars for tiny models
    clip_dir, llama_dir = folder / "clip", folder / "llama"
    torch.manual_seed(0)
    with torch.device(device):
        clip = CLIPVisionModel._from_config(CLIPVisionConfig(
            image_size=sizes.image_size, patch_size=sizes.patch_size, hidden_size=sizes.vision_hidden,
            intermediate_size=sizes.vision_intermediate, num_hidden_layers=sizes.vision_layers,
            num_attention_heads=sizes.vision_heads,
        ), dtype=dtype)
    clip.save_pretrained(clip_dir)
    del clip
    # transformers 5's PIL-backed processor needs no torchvision.
    processor_class = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor_class(
        size={"shortest_edge": sizes.image_size}, crop_size={"height": sizes.image_size, "width": sizes.image_size}
    ).save_pretrained(clip_dir)

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, sizes.vocab)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>"
    )
    torch.manual_seed(1)
    with torch.device(device):
        llama = LlamaForCausalLM._from_config(LlamaConfig(
            vocab_size=sizes.vocab, hidden_size=sizes.llm_hidden, intermediate_size=sizes.llm_intermediate,
            num_hidden_layers=sizes.llm_layers, num_attention_heads=sizes.llm_heads,
            num_key_value_heads=sizes.llm_heads, max_position_embeddings=2048, tie_word_embeddings=False,
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        ), dtype=dtype)
    llama.save_pretrained(llama_dir)
    del llama
    tokenizer.save_pretrained(llama_dir)
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return clip_dir, llama_dir


def build_ablate(clip_dir: Path, llama_dir: Path, stage: int = 2, frozen_dtype: str = "fp32"):
    """ablate's model through its registries: encoder frozen, connector trainable, LLM trainable
    in stage 2 and frozen in stage 1. With frozen_dtype "bf16" the frozen components are loaded in
    bfloat16 (the recipe's `dtype: bfloat16`); trainable ones stay float32 (master weights)."""
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.schema import ModelSection

    frozen = "bfloat16" if frozen_dtype == "bf16" else "float32"
    section = ModelSection(
        encoder={"type": "hf_clip", "name_or_path": str(clip_dir), "feature_layer": -2, "select": "patch",
                 "dtype": frozen},
        connector={"type": "mlp", "depth": 2, "activation": "gelu"},
        llm={"type": "hf_causal_lm", "name_or_path": str(llama_dir), "attn_implementation": "sdpa",
             "dtype": frozen if stage == 1 else "float32"},
    )
    torch.manual_seed(2)  # connector init
    vlm = build_vlm(section)
    apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": "frozen" if stage == 1 else "full"})
    return vlm.train()


_PROJECTOR = {"0": "linear_1", "2": "linear_2"}  # ablate's mlp depth 2 -> LLaVA's projector


def _llava_key(ours: str) -> str:
    """The LlavaForConditionalGeneration state-dict key of one of ablate's."""
    component, rest = ours.split(".", 1)
    if component == "encoder":
        return "model.vision_tower." + rest.removeprefix("model.")
    if component == "connector":
        index, part = rest.split(".", 1)
        return f"model.multi_modal_projector.{_PROJECTOR[index]}.{part}"
    return rest.replace("model.", "model.language_model.", 1) if rest.startswith("model.") else rest


def build_llava_like(vlm, image_token_id: int, share_weights: bool = False):
    """LlavaForConditionalGeneration with the same configs, holding a copy of `vlm`'s weights (same
    dtypes, same trainable set). With `share_weights` it holds vlm's Parameter objects themselves:
    one copy of a 7B model in memory instead of two."""
    from accelerate import init_empty_weights
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    vision, text = vlm.encoder.model.config, vlm.llm.config
    config = LlavaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(),
        image_token_id=image_token_id, image_seq_length=vlm.connector.num_output_tokens,
        projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    # Parameters on the meta device (nothing drawn), buffers real; load_state_dict(assign=True)
    # then puts ablate's tensors (copies, or the Parameters themselves) in place.
    with init_empty_weights():
        llava = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    tensors = dict(vlm.named_parameters(remove_duplicate=False))
    # Read before loading: assign=True gives an assigned Parameter the requires_grad of the one it replaces.
    trainable = {_llava_key(k): p.requires_grad for k, p in tensors.items()}
    state = {}
    for key, value in vlm.state_dict().items():
        value = tensors.get(key, value)
        state[_llava_key(key)] = value if share_weights else value.detach().clone()
    llava.load_state_dict(state, strict=True, assign=True)
    llava.train()
    llava.model.vision_tower.eval()
    for key, param in llava.named_parameters():
        param.requires_grad_(trainable[key])
    return llava


# ---- batch ---------------------------------------------------------------------------------


def make_batches(sizes: Sizes, batch: int, text_tokens: int, image_token_id: int, seed: int = 0):
    """The same samples for both: `<s> <image> text...` with the first quarter of the text as an
    unscored prompt. ablate gets one IMAGE_TOKEN_INDEX per image; LLaVA gets `image_token_id`
    once per visual token, so both LLMs see text_tokens + visual_tokens - 1 positions."""
    from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX

    g = torch.Generator().manual_seed(seed)
    text = torch.randint(3, image_token_id, (batch, text_tokens - 1), generator=g)
    bos = torch.ones(batch, 1, dtype=torch.long)
    labels = text.clone()
    labels[:, : (text_tokens - 1) // 4] = IGNORE_INDEX
    pixels = torch.randn(batch, 3, sizes.image_size, sizes.image_size, generator=g)
    ignore1 = torch.full((batch, 1), IGNORE_INDEX)

    ours_ids = torch.cat([bos, torch.full((batch, 1), IMAGE_TOKEN_INDEX), text], 1)
    ablate_batch = dict(
        input_ids=ours_ids, attention_mask=torch.ones_like(ours_ids),
        labels=torch.cat([ignore1, ignore1, labels], 1), pixel_values=pixels,
    )
    n_vis = sizes.visual_tokens
    llava_ids = torch.cat([bos, torch.full((batch, n_vis), image_token_id), text], 1)
    llava_batch = dict(
        input_ids=llava_ids, attention_mask=torch.ones_like(llava_ids),
        labels=torch.cat([ignore1, torch.full((batch, n_vis), IGNORE_INDEX), labels], 1), pixel_values=pixels.clone(),
    )
    return ablate_batch, llava_batch


# ---- measuring -----------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model, optimizer, inputs: dict, device: torch.device, dtype: str) -> float:
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, dtype):
        loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _flop_counter():
    """FlopCounterMode, also counting CPU's fused attention kernels with torch's own SDPA formulas."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        # Formulas receive shapes (FlopCounterMode wraps them); same arguments order as CUDA's flash kernels.
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = (
            lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(q, k, v)
        )
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = (
            lambda grad, q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_backward_flop_count(grad, q, k, v)
        )
    return flop_counter.FlopCounterMode(display=False, custom_mapping=mapping)


def check_same_loss(models: dict, batches: dict, tolerance: float = FAIRNESS_TOLERANCE) -> dict[str, float]:
    """fp32 losses of both models on their batches; AssertionError if they differ by more than
    `tolerance` (then the two would not be computing the same function).

    Models holding bf16 weights (frozen_dtype "bf16") cannot run in fp32: they are compared under
    bf16 autocast, with tolerance BF16_TOLERANCE."""
    mixed = any(p.dtype != torch.float32 for p in models["ablate"].parameters() if p.is_floating_point())
    device = next(models["ablate"].parameters()).device
    if mixed:
        tolerance = max(tolerance, BF16_TOLERANCE)
    with torch.no_grad(), _autocast(device, "bf16" if mixed else "fp32"):
        losses = {name: float(models[name](**batches[name]).loss) for name in MODELS}
    diff = abs(losses["ablate"] - losses["llava"])
    assert diff <= tolerance, f"losses differ by {diff:.3g}: {losses}; the two models are not the same function"
    return losses


def count_step_flops(model, inputs: dict, device: torch.device, dtype: str) -> int:
    """FLOPs of one forward + backward (the optimizer's elementwise work is not counted)."""
    counter = _flop_counter()
    with counter:
        with _autocast(device, dtype):
            loss = model(**inputs).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak_gflops(device: torch.device, dtype: str, n: int | None = None, repeats: int = 5) -> float:
    """Best of `repeats` n x n matmuls, in GFLOP/s: what this process can get from the hardware now."""
    n = n or (8192 if device.type == "cuda" else 2048)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    a @ b  # warm-up (kernel selection, thread pool)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def build_pair(sizes: Sizes, batch: int, text_tokens: int, device: torch.device, workdir=None, *,
               stage: int = 2, frozen_dtype: str = "fp32", share_weights: bool = False,
               checkpoint_dtype: torch.dtype = torch.float32):
    """({"ablate": model, "llava": model}, {"ablate": batch, "llava": batch}) on `device`."""
    image_token_id = sizes.vocab - 1  # never drawn as a text token
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        clip_dir, llama_dir = _save_checkpoints(sizes, Path(tmp), device, checkpoint_dtype)
        ablate_model = build_ablate(clip_dir, llama_dir, stage, frozen_dtype)
        llava_model = build_llava_like(ablate_model, image_token_id, share_weights)
    # Module.to keeps Parameter objects (it swaps their .data), so shared weights stay shared.
    models = {"ablate": ablate_model.to(device), "llava": llava_model.to(device)}
    ablate_batch, llava_batch = make_batches(sizes, batch, text_tokens, image_token_id)
    batches = {"ablate": _to(ablate_batch, device), "llava": _to(llava_batch, device)}
    return models, batches


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def make_optimizers(models: dict, device: torch.device, share_weights: bool = False) -> dict:
    """AdamW (lr 1e-4; fused on CUDA) per model, or one for both when they share their weights."""
    def adamw(model):
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                 **({"fused": True} if device.type == "cuda" else {}))

    if share_weights:
        shared = adamw(models["ablate"])
        return {name: shared for name in MODELS}
    return {name: adamw(models[name]) for name in MODELS}


def enable_grad_ckpt(models: dict) -> None:
    """Activation checkpointing of each LLM's decoder layers (non-reentrant), nothing else."""
    kwargs = {"use_reentrant": False}
    models["ablate"].activation_checkpointing_enable(kwargs)  # the LLM's layers (the encoder is frozen)
    llm = models["llava"].model.language_model
    # transformers 5 renamed gradient_checkpointing_enable (still an alias until v6).
    (getattr(llm, "activation_checkpointing_enable", None) or llm.gradient_checkpointing_enable)(kwargs)


def _first(batch: dict, n: int) -> dict:
    return {k: v[:n] for k, v in batch.items()}


def run_benchmark(
    *,
    steps: int = 20,
    warmup: int = 3,
    batch: int = 8,
    text_tokens: int = 128,
    sizes: Sizes = Sizes(),
    device: str = "cpu",
    dtype: str = "fp32",
    threads: int | None = None,
    count_flops: bool = True,
    measure_peak: bool = True,
    workdir: str | Path | None = None,
    stage: int = 2,
    frozen_dtype: str = "fp32",
    grad_ckpt: bool = False,
    share_weights: bool = False,
) -> Result:
    """Build both models, check they compute the same loss, then time interleaved steps.

    stage 1 trains the connector with the LLM frozen (LLaVA's pretraining), stage 2 the connector
    and the LLM. frozen_dtype "bf16" stores frozen components in bf16; share_weights makes LLaVA
    hold ablate's Parameters and gives both one AdamW (the same work per step, half the memory);
    grad_ckpt checkpoints each LLM's layers (FLOPs are then counted on one sample without it,
    times the batch: model FLOPs, recomputation not included).

    Raises AssertionError when the losses on the first batch differ by more than the tolerance
    (then the comparison would not be of the same computation).
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    if frozen_dtype == "bf16" and dtype != "bf16":
        raise ValueError("frozen_dtype 'bf16' needs dtype 'bf16' (autocast)")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    models, batches = build_pair(
        sizes, batch, text_tokens, dev, workdir, stage=stage, frozen_dtype=frozen_dtype,
        share_weights=share_weights, checkpoint_dtype=torch.bfloat16 if dtype == "bf16" else torch.float32,
    )

    losses = check_same_loss(models, batches)

    result = Result(
        device=str(dev), dtype=dtype, threads=torch.get_num_threads(), batch=batch, text_tokens=text_tokens,
        llm_tokens=text_tokens + sizes.visual_tokens - 1, steps=steps, losses_first_batch=losses,
        stage=stage, frozen_dtype=frozen_dtype, grad_ckpt=grad_ckpt, share_weights=share_weights,
        sizes=asdict(sizes),
    )
    if count_flops:
        result.flops_per_step = _step_flops(models, batches, dev, dtype, batch, grad_ckpt)
    if measure_peak:
        result.peak_gflops = matmul_peak_gflops(dev, dtype)
    if grad_ckpt:
        enable_grad_ckpt(models)
    optimizers = make_optimizers(models, dev, share_weights)
    result.step_seconds = _timed_steps(models, optimizers, batches, dev, dtype, warmup, steps)
    if dev.type == "cuda":
        result.peak_memory_gib = torch.cuda.max_memory_allocated(dev) / 2**30
    return result


def _step_flops(models: dict, batches: dict, dev: torch.device, dtype: str, batch: int, grad_ckpt: bool) -> dict:
    if grad_ckpt:  # one sample fits without checkpointing; FLOPs are linear in the batch
        return {name: batch * count_step_flops(models[name], _first(batches[name], 1), dev, dtype) for name in MODELS}
    return {name: count_step_flops(models[name], batches[name], dev, dtype) for name in MODELS}


def _timed_steps(models: dict, optimizers: dict, batches: dict, dev: torch.device, dtype: str, warmup: int,
                 steps: int) -> dict[str, list[float]]:
    """{model: seconds of each step after `warmup`}, the two models' steps interleaved."""
    seconds: dict[str, list[float]] = {name: [] for name in MODELS}
    for i in range(warmup + steps):
        # Alternate which goes first, so neither always runs right after the other's cleanup.
        order = MODELS if i % 2 == 0 else MODELS[::-1]
        for name in order:
            _sync(dev)
            start = time.perf_counter()
            train_step(models[name], optimizers[name], batches[name], dev, dtype)
            _sync(dev)
            if i >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def profile_steps(models: dict, batches: dict, optimizers: dict, device: torch.device, dtype: str,
                  rows: int = 15) -> str:
    """torch.profiler tables (self CPU time) of one step of each model."""
    from torch.profiler import ProfilerActivity, profile

    tables = []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name in MODELS:
        with profile(activities=activities) as prof:
            train_step(models[name], optimizers[name], batches[name], device, dtype)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        tables.append(f"== {name} ==\n" + prof.key_averages().table(sort_by=sort, row_limit=rows))
    return "\n".join(tables)


def describe_setup(r: Result) -> str:
    """Model shapes, what trains, weight dtypes and memory savers, in one line."""
    z = r.sizes
    trained = "connector (LLM frozen)" if r.stage == 1 else "connector + LLM"
    parts = [
        f"vision {z['vision_layers']}x{z['vision_hidden']} @ {z['image_size']}px/{z['patch_size']}, "
        f"LLM {z['llm_layers']}x{z['llm_hidden']} (ffn {z['llm_intermediate']}, vocab {z['vocab']})",
        f"stage {r.stage}: {trained} trained",
        f"frozen weights {r.frozen_dtype}, trainable fp32",
    ]
    if r.grad_ckpt:
        parts.append("LLM activation checkpointing")
    if r.share_weights:
        parts.append("LLaVA shares ablate's weights and AdamW")
    return "; ".join(parts)


def format_result(r: Result) -> str:
    # GFLOP/s on a CPU, TFLOP/s on a GPU.
    unit, scale = ("TFLOP", 1e3) if r.peak_gflops > 1e4 or r.device.startswith("cuda") else ("GFLOP", 1.0)
    lines = [
        f"device {r.device}, {r.dtype}, {r.threads} thread(s); torch {torch.__version__}, "
        f"transformers {_transformers_version()}",
        describe_setup(r),
        f"batch {r.batch} x ({r.text_tokens} text + visual = {r.llm_tokens} LLM tokens), {r.steps} timed steps each",
        "first-batch loss: " + ", ".join(f"{n} {r.losses_first_batch[n]:.6f}" for n in MODELS)
        + f" (diff {abs(r.losses_first_batch['ablate'] - r.losses_first_batch['llava']):.2e})",
    ]
    if r.peak_gflops:
        lines.append(f"matmul peak: {r.peak_gflops / scale:.1f} {unit}/s")
    if r.peak_memory_gib:
        lines.append(f"peak GPU memory allocated: {r.peak_memory_gib:.1f} GiB (both models resident)")
    for name in MODELS:
        times = r.step_seconds[name]
        line = (f"{name:>7}: median step {r.median(name) * 1e3:8.1f} ms "
                f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}), {r.samples_per_s(name):7.2f} samples/s, "
                f"{r.tokens_per_s(name):.0f} tokens/s")
        if r.flops_per_step:
            line += (f", {r.flops_per_step[name] / 1e9 / scale:.2f} {unit}/step, "
                     f"{r.gflops(name) / scale:.1f} {unit}/s")
            if r.peak_gflops:
                line += f" ({100 * r.gflops(name) / r.peak_gflops:.0f}% of peak)"
        lines.append(line)
    lines.append(f"ratio ablate/llava (samples/s): {r.ratio:.3f} from medians, {r.paired_ratio:.3f} median of pairs, "
                 f"{r.best_ratio:.3f} from best steps")
    return "\n".join(lines)


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--batch", type=int, default=8, help="samples per step, one image each")
    parser.add_argument("--seq", type=int, default=128, help="text tokens per sample (visual tokens come on top)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch intra-op threads; default 1 on CPU (steady on a shared machine), 0 = torch's default",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = bf16 autocast")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="tiny",
                        help="model shapes: tiny (default), or CLIP ViT-L/14-336 + a Vicuna-7B/13B-shaped Llama")
    parser.add_argument("--llm-layers", type=int, default=None, help="override the preset's LLM layer count")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2,
                        help="1: connector trained, LLM frozen (LLaVA pretraining); 2: connector + LLM (default)")
    parser.add_argument("--frozen-dtype", choices=("fp32", "bf16"), default="fp32",
                        help="storage of frozen components (encoder; the LLM in stage 1); bf16 needs --dtype bf16")
    parser.add_argument("--grad-ckpt", action="store_true", help="activation checkpointing of both LLMs' layers")
    parser.add_argument("--share-weights", action=argparse.BooleanOptionalAction, default=None,
                        help="LLaVA holds ablate's parameters and both use one AdamW (default: on for llava-* presets)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the random checkpoints are written and read (default: the temp folder)")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table per model")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures to this file")
    parser.add_argument("--record", action="store_true",
                        help=f"append ablate's achieved FLOP/s to {RECORD_FILE.relative_to(RECORD_FILE.parents[2])}, "
                        "where `ablate plan` takes its MFU for this GPU from (needs --device cuda --dtype bf16)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.frozen_dtype == "bf16" and args.dtype != "bf16":
        parser.error("--frozen-dtype bf16 needs --dtype bf16")
    if args.llm_layers is not None and args.llm_layers < 1:
        parser.error("--llm-layers must be at least 1")
    if args.record and (args.device != "cuda" or args.dtype != "bf16"):
        parser.error("--record needs --device cuda --dtype bf16: `ablate plan` compares with bf16 datasheet peaks")

    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else 0)
    result = run_benchmark(
        steps=args.steps, warmup=args.warmup, batch=args.batch, text_tokens=args.seq,
        device=args.device, dtype=args.dtype, threads=threads or None, **_shape_options(args),
    )
    print(format_result(result))
    if args.json:
        figures = {**asdict(result), "ratio": result.ratio, "paired_ratio": result.paired_ratio,
                   "best_ratio": result.best_ratio,
                   "samples_per_s": {n: result.samples_per_s(n) for n in MODELS},
                   "tokens_per_s": {n: result.tokens_per_s(n) for n in MODELS}}
        if result.flops_per_step:
            figures["gflops_per_s"] = {n: result.gflops(n) for n in MODELS}
        args.json.write_text(json.dumps(figures, indent=2))
    if args.record:
        _record(result, args.preset)
    if args.profile:
        _profile(args)
    return 0


# ---- recorded figures ----------------------------------------------------------------------

RECORD_FILE = Path(__file__).resolve().parent / "recorded" / "train_step.json"


def record_entry(result: Result, device_name: str, preset: str) -> dict:
    """What `ablate plan` reads of a GPU run (ablate.plan.mfu): the GPU, whether the LLM trained,
    ablate's achieved model TFLOP/s (FlopCounterMode's FLOPs / median step time), and the setup."""
    import datetime
    import subprocess

    from ablate.plan.gpus import gpu_for_device

    gpu = gpu_for_device(device_name)
    if gpu is None:
        raise SystemExit(f"--record: {device_name!r} is not in ablate.plan.gpus.GPUS; add it there first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or None
    return {"gpu": gpu.key, "device_name": device_name, "llm_trained": result.stage == 2,
            "achieved_tflops": round(result.gflops("ablate") / 1e3, 1), "preset": preset, "stage": result.stage,
            "batch": result.batch, "llm_tokens": result.llm_tokens, "llm_layers": result.sizes["llm_layers"],
            "grad_ckpt": result.grad_ckpt, "dtype": result.dtype, "date": datetime.date.today().isoformat(),
            "commit": commit, "source": "benchmarks/train_step.py --record"}


def _record(result: Result, preset: str) -> None:
    entry = record_entry(result, torch.cuda.get_device_name(), preset)
    append_record(entry)
    print(f"recorded in {RECORD_FILE}: {entry['achieved_tflops']} TFLOP/s on {entry['gpu']}")


def append_record(entry: dict, path: Path = RECORD_FILE) -> None:
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*entries, entry], indent=2) + "\n", encoding="utf-8")


def _shape_options(args) -> dict:
    """run_benchmark's model options from the command line."""
    sizes = PRESETS[args.preset]
    if args.llm_layers is not None:
        sizes = replace(sizes, llm_layers=args.llm_layers)
    share = args.share_weights if args.share_weights is not None else args.preset != "tiny"
    return dict(sizes=sizes, stage=args.stage, frozen_dtype=args.frozen_dtype, grad_ckpt=args.grad_ckpt,
                share_weights=share, workdir=args.workdir)


def _profile(args) -> None:
    """Rebuild both models and profile one step of each (after two warm-up steps)."""
    dev = torch.device(args.device)
    options = _shape_options(args)
    models, batches = build_pair(
        options["sizes"], args.batch, args.seq, dev, options["workdir"], stage=args.stage,
        frozen_dtype=args.frozen_dtype, share_weights=options["share_weights"],
        checkpoint_dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32,
    )
    if args.grad_ckpt:
        enable_grad_ckpt(models)
    optimizers = make_optimizers(models, dev, options["share_weights"])
    for _ in range(2):
        for name in MODELS:
            train_step(models[name], optimizers[name], batches[name], dev, args.dtype)
    print(profile_steps(models, batches, optimizers, dev, args.dtype))


if __name__ == "__main__":
    sys.exit(main())
