"""Diagnostics: measurements that explain a study's verdict.

A study file declares them (`diagnostics:`, each `{type: <registered name>, ...config}`); they
run as part of the study, after its cells, at the scales they name (default tiny and small),
and the report prints each one's measured figures and finding under the verdict:

    diagnostics:
      - type: stage_length          # accuracy and final loss vs the last stage's length, per arm
        epochs: [2]                 # lengths besides the cells' own (the cells are reused)
        params: [llm]               # trainable-parameter columns
        question: is the larger LLM undertrained at equal steps?

Registered: `plateau` (the epoch each arm's per-epoch curve levels off, per seed),
`stage_length` (extra runs of each arm at other lengths of the last stage, one seed),
`layer_probe` (linear-probe accuracy of each vision-encoder layer's features),
`option_naming` (how often answers name an option, and the named option's accuracy against
chance, from the cells' predictions), `answer_pieces` (accuracy by the right answer's length
in the cell LLM's tokens) and `variant` (one arm run again with recipe fields
changed, one seed). `ablate.study.
diagnostics.registry.diagnostics()` is their registry: exact keys, pydantic configs.
"""

from ablate.study.diagnostics.base import DiagnosticConfig, DiagnosticContext, DiagnosticResult, DiagnosticRun
from ablate.study.diagnostics.registry import diagnostics

__all__ = ["DiagnosticConfig", "DiagnosticContext", "DiagnosticResult", "DiagnosticRun", "diagnostics"]
