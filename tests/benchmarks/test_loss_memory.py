"""benchmarks/loss_memory.py: each variant measured at a toy shape, and the summary it prints."""

from __future__ import annotations

import pytest
import torch

from bench_scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("loss_memory")


def test_variants_give_the_same_loss_and_a_peak(bench):
    torch.set_num_threads(1)
    shape = bench.Shape(hidden=32, intermediate=64, layers=1, heads=2, vocab=4096, batch=2, seq=64)
    results = {v: bench.measure(v, shape, "cpu", "fp32", scored=0.5) for v in ("plain", "chunked")}
    assert results["chunked"]["loss"] == pytest.approx(results["plain"]["loss"], abs=1e-5)
    assert all(r["peak_mib"] >= 0 for r in results.values())
    assert bench.available("cpu") == ["plain", "chunked"]  # fused: CUDA only


def test_the_summary_names_each_variant_and_the_ratio(bench, monkeypatch, capsys):
    peaks = {"plain": 1000.0, "chunked": 40.0}
    monkeypatch.setattr(bench, "run_variant", lambda v, args: {"variant": v, "peak_mib": peaks[v], "loss": 11.76})
    bench.main([])
    out = capsys.readouterr().out
    assert "fp32 logits of every position: 1002 MiB" in out  # 2 x 1024 positions x 128,256 x 4 bytes
    assert "chunked: peak +    40.0 MiB" in out
    assert out.strip().splitlines()[-1] == "plain / chunked: 25.00x the peak memory"
