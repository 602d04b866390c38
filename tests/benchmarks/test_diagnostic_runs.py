"""benchmarks/diagnostic_runs.py: it times the runs `ablate study` would plan for the diagnostics."""

from __future__ import annotations

from bench_scripts import load_script


def test_the_planned_runs_are_the_studys_diagnostic_runs():
    jobs = load_script("diagnostic_runs").planned_jobs("llm_scale", "sqlite:///unused.db")
    assert [job.line for job in jobs] == ["diagnostic stage_length: 13B · seed 42 · epochs=2",
                                          "diagnostic stage_length: 7B · seed 42 · epochs=2"]
    assert [job.recipe.stages[-1].epochs for job in jobs] == [2, 2]
    assert all(job.parent_run_id is None for job in jobs)
    assert {job.tags["ablate.study.diagnostic"] for job in jobs} == {"stage_length"}
