"""Rehearse a study's paper scale on CPU: every cell, a few steps, on the rehearsal kit
(`ablate.zoo.kit`). `recipes`: what changes in each cell's recipe; `session`: the run;
`judge`: the stand-in judge; `notes`: what it prints."""

from ablate.study.rehearsal.recipes import EVAL_LIMIT, MAX_STEPS, Rehearsal
from ablate.study.rehearsal.session import rehearse_study

__all__ = ["EVAL_LIMIT", "MAX_STEPS", "Rehearsal", "rehearse_study"]
