"""Throughput under torchrun: tokens/s counts every rank's tokens, as samples/s counts the global batch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import tiny_run

SCRIPT = textwrap.dedent("""
    import sys
    import types
    from pathlib import Path
    from ablate.ranks import ranks
    from ablate.train.callbacks import ThroughputMeter

    rank = ranks().process_index
    model = types.SimpleNamespace(tokens_processed=7)
    meter = ThroughputMeter(model, global_batch=4)
    model.tokens_processed += 10 * (rank + 1)  # rank 0 trains 10 tokens, rank 1 20
    meter.t0 -= 1000.0  # as if 1,000 s had passed since the last log
    figures = meter.measure(step=5)
    # a file per rank: two ranks printing to one pipe may interleave their lines
    Path(sys.argv[1], f"rank{rank}.txt").write_text(
        f"{figures['tokens_per_s'] * 1000:.3f} tokens, {figures['samples_per_s'] * 1000:.3f} samples")
""")


def test_tokens_per_second_sums_the_ranks(tmp_path):
    script = tmp_path / "meter.py"
    script.write_text(SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={tiny_run.free_port()}",
           str(script), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tiny_run.REPO, env=tiny_run.cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 30 tokens in the job over 1,000 s (each rank measures; rank 0 logs), 5 steps of 4 samples
    assert [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)] == ["30.000 tokens, 20.000 samples"] * 2
