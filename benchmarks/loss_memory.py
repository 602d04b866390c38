"""Peak memory of one training step's loss: the LLM's own (plain) vs ablate's chunked and fused losses.

A Llama with random weights runs forward + backward on one batch of token ids, its loss taken
each way `ablate.model.loss` offers, each in a fresh process (`--variant` runs one), so no
variant inherits another's allocator state. On CPU the figure is the process's peak resident
memory during the step (Linux's VmHWM) over its resident memory just before; on CUDA, the peak
allocated over the allocated memory before (`torch.cuda.max_memory_allocated`). Both counters
are reset just before the step, so the model's construction does not count. The losses of
the variants are printed too: they must agree.

The default shape is a 128K vocabulary (Llama-3's 128,256) at a small width on the CPU, where the
fp32 logits of every position (positions x vocabulary x 4 bytes) dwarf the rest of the step.

    python benchmarks/loss_memory.py                       # CPU, preset cpu-128k
    python benchmarks/loss_memory.py --device cuda --preset llama-7b --dtype bf16   # needs a GPU

`fused` (Liger-kernel) runs only on CUDA with liger-kernel installed (`pip install 'ablate[liger]'`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "chunked", "fused")


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    batch: int
    seq: int


PRESETS = {
    # Llama-3's vocabulary at the zoo's tiny width: the logits are nearly all of the step's memory.
    "cpu-128k": Shape(hidden=256, intermediate=688, layers=2, heads=4, vocab=128_256, batch=2, seq=1024),
    # Vicuna-7B's width and vocabulary, LLaVA-1.5's 2048 positions, 2 of its 32 layers.
    "llama-7b": Shape(hidden=4096, intermediate=11008, layers=2, heads=32, vocab=32_000, batch=8, seq=2048),
    # Llama-3-8B's width and vocabulary, 2 of its layers.
    "llama3-8b": Shape(hidden=4096, intermediate=14336, layers=2, heads=32, vocab=128_256, batch=4, seq=2048),
}


def measure(variant: str, shape: Shape, device: str, dtype: str, scored: float) -> dict:
    """One forward + backward with the loss taken as `variant`: (peak memory over the start, loss)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ablate.components.contracts import IGNORE_INDEX
    from ablate.model.loss import causal_lm_loss

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.heads, max_position_embeddings=max(2048, shape.seq),
                         tie_word_embeddings=False)
    weights = torch.bfloat16 if dtype == "bf16" else torch.float32
    with torch.device(device):
        llm = LlamaForCausalLM._from_config(config, dtype=weights, attn_implementation="sdpa").train()
    ids = torch.randint(0, shape.vocab, (shape.batch, shape.seq), device=device)
    labels = ids.clone()
    labels[:, : int(shape.seq * (1 - scored))] = IGNORE_INDEX  # the prompt's share is not scored
    start = _allocated(device)
    if variant == "plain":
        loss = llm(input_ids=ids, labels=labels, use_cache=False).loss
    else:
        loss = causal_lm_loss(llm, {"input_ids": ids, "use_cache": False}, labels, variant).loss
    loss.backward()
    return {"variant": variant, "peak_mib": (_peak(device) - start) / 2**20, "loss": float(loss.detach())}


def _allocated(device: str) -> int:
    """Memory in use now, and the peak counter reset to it."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak resident size (VmHWM) restarts from now
    return _status_bytes("VmRSS")


def _peak(device: str) -> int:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise SystemExit(f"/proc/self/status has no {field}: this measures CPU memory on Linux only")


def run_variant(variant: str, args) -> dict:
    """`measure` in a fresh process (its result as JSON on the last line of its output)."""
    cmd = [sys.executable, __file__, "--variant", variant, "--preset", args.preset, "--device", args.device,
           "--dtype", args.dtype, "--scored", str(args.scored), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def available(device: str) -> list[str]:
    import importlib.util

    fused = device == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    return [v for v in VARIANTS if v != "fused" or fused]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu-128k")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="weights' dtype")
    parser.add_argument("--scored", type=float, default=1.0, help="share of positions with a label (answers)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one measurement, in this process
    args = parser.parse_args(argv)
    shape = PRESETS[args.preset]
    if args.variant:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.variant, shape, args.device, args.dtype, args.scored)))
        return 0
    print(f"{args.preset}: {asdict(shape)}, {args.device}, {args.dtype} weights, {args.scored:.0%} of positions scored")
    print(f"fp32 logits of every position: {shape.batch * shape.seq * shape.vocab * 4 / 2**20:.0f} MiB")
    results = {v: run_variant(v, args) for v in available(args.device)}
    for variant, result in results.items():
        print(f"{variant:>8}: peak +{result['peak_mib']:8.1f} MiB over the step's start, loss {result['loss']:.6f}")
    best = min((v for v in results if v != "plain"), key=lambda v: results[v]["peak_mib"])
    print(f"plain / {best}: {results['plain']['peak_mib'] / max(results[best]['peak_mib'], 1e-9):.2f}x the peak memory")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
