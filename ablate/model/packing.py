"""Padding-free batches: a batch's samples, visual tokens spliced in, laid end to end in rows.

Attention never crosses from one sample into another. Each sample's position ids restart at 0,
and transformers reads the boundaries from them when `attention_mask` is None and there is no
cache (the convention of its `DataCollatorWithFlattening`):

- flash-attention: one row; `_flash_attention_forward` turns the restarts into `cu_seqlens` for
  the varlen kernel, so a sample's attention costs its own length squared, nothing more.
- SDPA and eager: `masking_utils.create_causal_mask` finds the packed sequences from the position
  ids (`find_packed_sequence_indices`) and masks across them. These kernels compute a row's whole
  attention matrix, so rows are kept no longer than the batch's longest sample (first-fit
  decreasing): no row costs more than a padded row of the same batch, and there are fewer rows.

What a row holds after its samples is padding: zero embeddings, labels IGNORE_INDEX, and
positions from 0 again, which make it a sequence of its own that no sample attends to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


# LLMs whose attention masks come from transformers' masking utilities (which read packed
# sequences from position ids) or its flash-attention varlen path. A model that builds its own
# mask from attention_mask alone would let a packed row's samples see each other.
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "olmo2"})


def packing_problem(llm) -> str | None:
    """Why `llm` cannot train on packed rows, or None when it can."""
    model_type = getattr(getattr(llm, "config", None), "model_type", None)
    if model_type in PACKABLE_MODEL_TYPES:
        return None
    return (f"needs an LLM whose attention transformers keeps within each packed sample "
            f"({', '.join(sorted(PACKABLE_MODEL_TYPES))}); this one is {model_type!r}")


@dataclass(frozen=True)
class Rows:
    """Where each sample of a batch goes in the packed rows."""

    row: torch.Tensor  # [B] the row of each sample
    start: torch.Tensor  # [B] its first position in that row
    rows: int
    width: int


def one_row_per_batch(config) -> bool:
    """Whether the LLM's attention takes a whole packed batch as one row (flash-attention varlen)."""
    from transformers.utils.generic import is_flash_attention_requested

    return is_flash_attention_requested(config)


def pack_rows(lengths: torch.Tensor, one_row: bool) -> Rows:
    """Rows for samples of `lengths` tokens: all in one row, or first-fit decreasing into rows no
    longer than the longest sample."""
    sizes = lengths.tolist()
    if one_row:
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return _rows([0] * len(sizes), starts, max(sum(sizes), 0), lengths.device, rows=1)
    capacity = max(sizes, default=0)
    fill: list[int] = []
    row, start = [0] * len(sizes), [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        target = next((r for r, used in enumerate(fill) if used + sizes[i] <= capacity), len(fill))
        if target == len(fill):
            fill.append(0)
        row[i], start[i] = target, fill[target]
        fill[target] += sizes[i]
    return _rows(row, start, capacity, lengths.device, rows=len(fill))


def _rows(row: list[int], start: list[int], width: int, device, rows: int) -> Rows:
    return Rows(torch.tensor(row, dtype=torch.long, device=device),
                torch.tensor(start, dtype=torch.long, device=device), rows, width)


def packed_position_ids(rows: Rows, lengths: torch.Tensor) -> torch.Tensor:
    """[rows, width] positions that restart at 0 at every sample and at each row's padding."""
    index = torch.arange(rows.width, device=lengths.device)
    starts = torch.zeros(rows.rows, rows.width + 1, dtype=torch.bool, device=lengths.device)
    starts[rows.row, rows.start] = True
    used = torch.zeros(rows.rows, dtype=torch.long, device=lengths.device).index_add_(0, rows.row, lengths)
    starts[torch.arange(rows.rows, device=lengths.device), used] = True  # padding (or the spare column)
    starts = starts[:, :rows.width]
    segment_start = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - segment_start


def mask_sample_starts(labels: torch.Tensor, rows: Rows, lengths: torch.Tensor) -> None:
    """IGNORE_INDEX at each sample's first position, in place: that label would otherwise be
    scored as the prediction of the previous sample's last token (unpacked, a row's first label
    is never scored)."""
    from ablate.components.contracts import IGNORE_INDEX

    present = lengths > 0
    labels[rows.row[present], rows.start[present]] = IGNORE_INDEX
