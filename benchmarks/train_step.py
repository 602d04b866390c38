"""Training-step throughput: ablate's VisionLanguageModel vs transformers' LlavaForConditionalGeneration.

Both models are the same function: a tiny CLIP vision tower (frozen, layer -2, CLS dropped),
a depth-2 gelu MLP connector and a tiny Llama, with ablate's weights copied into the LLaVA
model; the script checks that their losses agree on the batch before timing anything. One
step = forward + backward + AdamW step, with the connector and the LLM trainable. Steps of
the two models are interleaved (A, B, B, A, ...) so load from other processes hits both
alike; medians are reported. On CPU it runs one intra-op thread unless told otherwise: on a
machine shared with other work that gives far steadier figures than oversubscribed threads
(see benchmarks/README.md).

    python benchmarks/train_step.py                      # CPU, fp32, 1 thread, defaults below
    python benchmarks/train_step.py --threads 0          # CPU with torch's default thread count
    python benchmarks/train_step.py --device cuda --dtype bf16 --batch 32

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

MODELS = ("ablate", "llava")
FAIRNESS_TOLERANCE = 1e-4  # fp32 loss difference allowed between the two models


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

    def median(self, name: str) -> float:
        return statistics.median(self.step_seconds[name])

    def samples_per_s(self, name: str) -> float:
        return self.batch / self.median(name)

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


def _save_checkpoints(sizes: Sizes, folder: Path) -> tuple[Path, Path]:
    """A CLIP vision tower and a Llama with its tokenizer, saved like any local checkpoint."""
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
    clip = CLIPVisionModel(CLIPVisionConfig(
        image_size=sizes.image_size, patch_size=sizes.patch_size, hidden_size=sizes.vision_hidden,
        intermediate_size=sizes.vision_intermediate, num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
    ))
    clip.save_pretrained(clip_dir)
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
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=sizes.vocab, hidden_size=sizes.llm_hidden, intermediate_size=sizes.llm_intermediate,
        num_hidden_layers=sizes.llm_layers, num_attention_heads=sizes.llm_heads,
        num_key_value_heads=sizes.llm_heads, max_position_embeddings=2048, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    ))
    llama.save_pretrained(llama_dir)
    tokenizer.save_pretrained(llama_dir)
    return clip_dir, llama_dir


def build_ablate(clip_dir: Path, llama_dir: Path):
    """ablate's model through its registries, encoder frozen, connector and LLM trainable."""
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.schema import ModelSection

    section = ModelSection(
        encoder={"type": "hf_clip", "name_or_path": str(clip_dir), "feature_layer": -2, "select": "patch"},
        connector={"type": "mlp", "depth": 2, "activation": "gelu"},
        llm={"type": "hf_causal_lm", "name_or_path": str(llama_dir), "attn_implementation": "sdpa"},
    )
    torch.manual_seed(2)  # connector init
    vlm = build_vlm(section)
    apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": "full"})
    return vlm.train()


def build_llava_like(vlm, image_token_id: int):
    """LlavaForConditionalGeneration with the same configs, holding a copy of `vlm`'s weights."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    vision, text = vlm.encoder.model.config, vlm.llm.config
    config = LlavaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(),
        image_token_id=image_token_id, image_seq_length=vlm.connector.num_output_tokens,
        projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    llava = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    state = {}
    for key, value in vlm.encoder.model.state_dict().items():
        state[f"model.vision_tower.{key}"] = value
    for ours, theirs in (("0", "linear_1"), ("2", "linear_2")):
        for part in ("weight", "bias"):
            state[f"model.multi_modal_projector.{theirs}.{part}"] = vlm.connector.state_dict()[f"{ours}.{part}"]
    for key, value in vlm.llm.state_dict().items():
        state[key.replace("model.", "model.language_model.", 1) if key.startswith("model.") else key] = value
    llava.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    llava.model.vision_tower.requires_grad_(False)
    llava.train()
    llava.model.vision_tower.eval()
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
    `tolerance` (then the two would not be computing the same function)."""
    with torch.no_grad():
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


def build_pair(sizes: Sizes, batch: int, text_tokens: int, device: torch.device, workdir=None):
    """({"ablate": model, "llava": model}, {"ablate": batch, "llava": batch}) on `device`."""
    image_token_id = sizes.vocab - 1  # never drawn as a text token
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        clip_dir, llama_dir = _save_checkpoints(sizes, Path(tmp))
        ablate_model = build_ablate(clip_dir, llama_dir)
        llava_model = build_llava_like(ablate_model, image_token_id)
    models = {"ablate": ablate_model.to(device), "llava": llava_model.to(device)}
    ablate_batch, llava_batch = make_batches(sizes, batch, text_tokens, image_token_id)
    batches = {"ablate": _to(ablate_batch, device), "llava": _to(llava_batch, device)}
    return models, batches


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


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
) -> Result:
    """Build both models, check they compute the same loss, then time interleaved steps.

    Raises AssertionError when the fp32 losses on the first batch differ by more than
    FAIRNESS_TOLERANCE (then the comparison would not be of the same computation).
    """
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    models, batches = build_pair(sizes, batch, text_tokens, dev, workdir)

    losses = check_same_loss(models, batches)

    result = Result(
        device=str(dev), dtype=dtype, threads=torch.get_num_threads(), batch=batch, text_tokens=text_tokens,
        llm_tokens=text_tokens + sizes.visual_tokens - 1, steps=steps, losses_first_batch=losses,
    )
    if count_flops:
        result.flops_per_step = {name: count_step_flops(models[name], batches[name], dev, dtype) for name in MODELS}
    if measure_peak:
        result.peak_gflops = matmul_peak_gflops(dev, dtype)

    optimizers = {
        name: torch.optim.AdamW([p for p in models[name].parameters() if p.requires_grad], lr=1e-4)
        for name in MODELS
    }
    result.step_seconds = {name: [] for name in MODELS}
    for i in range(warmup + steps):
        # Alternate which goes first, so neither always runs right after the other's cleanup.
        order = MODELS if i % 2 == 0 else MODELS[::-1]
        for name in order:
            _sync(dev)
            start = time.perf_counter()
            train_step(models[name], optimizers[name], batches[name], dev, dtype)
            _sync(dev)
            if i >= warmup:
                result.step_seconds[name].append(time.perf_counter() - start)
    return result


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


def format_result(r: Result) -> str:
    lines = [
        f"device {r.device}, {r.dtype}, {r.threads} thread(s); torch {torch.__version__}, "
        f"transformers {_transformers_version()}",
        f"batch {r.batch} x ({r.text_tokens} text + visual = {r.llm_tokens} LLM tokens), {r.steps} timed steps each",
        "first-batch loss: " + ", ".join(f"{n} {r.losses_first_batch[n]:.6f}" for n in MODELS)
        + f" (diff {abs(r.losses_first_batch['ablate'] - r.losses_first_batch['llava']):.2e})",
    ]
    if r.peak_gflops:
        lines.append(f"matmul peak: {r.peak_gflops:.1f} GFLOP/s")
    for name in MODELS:
        times = r.step_seconds[name]
        line = (f"{name:>7}: median step {r.median(name) * 1e3:8.1f} ms "
                f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}), {r.samples_per_s(name):7.2f} samples/s")
        if r.flops_per_step:
            line += f", {r.flops_per_step[name] / 1e9:.2f} GFLOP/step, {r.gflops(name):.1f} GFLOP/s"
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
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table per model")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")

    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else 0)
    result = run_benchmark(
        steps=args.steps, warmup=args.warmup, batch=args.batch, text_tokens=args.seq,
        device=args.device, dtype=args.dtype, threads=threads or None,
    )
    print(format_result(result))
    if args.json:
        figures = {**asdict(result), "ratio": result.ratio, "paired_ratio": result.paired_ratio,
                   "best_ratio": result.best_ratio}
        args.json.write_text(json.dumps(figures, indent=2))
    if args.profile:
        _profile(args)
    return 0


def _profile(args) -> None:
    """Rebuild both models and profile one step of each (after two warm-up steps)."""
    dev = torch.device(args.device)
    models, batches = build_pair(Sizes(), args.batch, args.seq, dev)
    optimizers = {n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad]) for n, m in models.items()}
    for _ in range(2):
        for name in MODELS:
            train_step(models[name], optimizers[name], batches[name], dev, args.dtype)
    print(profile_steps(models, batches, optimizers, dev, args.dtype))


if __name__ == "__main__":
    sys.exit(main())
