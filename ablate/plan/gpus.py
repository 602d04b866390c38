"""GPUs a plan can be made for: datasheet peak dense tensor FLOP/s and memory.

Peaks are NVIDIA's datasheet figures without sparsity (TFLOP/s); memory is the total nvidia-smi
reports, in GiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.errors import AblateError, did_you_mean


@dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    bf16_tflops: float  # also fp16
    tf32_tflops: float
    fp32_tflops: float
    memory_gib: float
    device_names: tuple[str, ...]  # what torch.cuda.get_device_name() says, lowercased fragments

    def peak_flops(self, precision: str, tf32: bool) -> float:
        """FLOP/s at a stage's precision: bf16/fp16 tensor cores, TF32 for fp32 with `tf32`, else fp32."""
        if precision in ("bf16", "fp16"):
            return self.bf16_tflops * 1e12
        return (self.tf32_tflops if tf32 else self.fp32_tflops) * 1e12


GPUS = {gpu.key: gpu for gpu in (
    Gpu("a100-40g", "NVIDIA A100 40GB", 312, 156, 19.5, 40.0, ("a100-sxm4-40gb", "a100-pcie-40gb")),
    Gpu("a100-80g", "NVIDIA A100 80GB", 312, 156, 19.5, 80.0, ("a100-sxm4-80gb", "a100 80gb pcie")),
    Gpu("h100-80g", "NVIDIA H100 SXM 80GB", 989, 495, 67, 79.6, ("h100 80gb hbm3", "h100-sxm")),
    Gpu("h100-pcie", "NVIDIA H100 PCIe 80GB", 756, 378, 51, 79.6, ("h100 pcie",)),
    Gpu("h200", "NVIDIA H200 141GB", 989, 495, 67, 140.4, ("h200",)),
    Gpu("l40s", "NVIDIA L40S 48GB", 362, 183, 91.6, 45.0, ("l40s",)),
)}
DEFAULT_GPU = "a100-80g"
DEFAULT_GPUS = 8


def gpu(key: str) -> Gpu:
    """The GPU `key` names; AblateError listing the known ones."""
    if key not in GPUS:
        raise AblateError(f"unknown --gpu {key!r}.{did_you_mean(key, GPUS)} Known GPUs: {', '.join(GPUS)}")
    return GPUS[key]


def gpu_for_device(device_name: str) -> Gpu | None:
    """The table's GPU for a CUDA device name (benchmarks record which GPU they measured)."""
    name = device_name.lower()
    return next((g for g in GPUS.values() if any(fragment in name for fragment in g.device_names)), None)


# The largest training clusters hold ~100K GPUs: a count past that is a typo, and the plan's
# per-GPU figures (a global batch of 10**15) would mean nothing.
MAX_GPUS = 100_000


def check_gpus(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GPUS:
        raise AblateError(f"--gpus must be a whole number of GPUs from 1 to {MAX_GPUS:,}; got {count!r}")
    return count
