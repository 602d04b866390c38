"""benchmarks/eval_speed.py: its copy of the previous evaluation loop and today's generate the same
predictions, on items whose batches differ between the two (file order vs length order)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench_scripts import load_script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from eval_parts import tiny_eval, tiny_run  # noqa: E402

from ablate.eval.generation import batches, length_order, prompt_turns, visual_tokens  # noqa: E402


def test_previous_and_current_loops_predict_the_same(tmp_path):
    bench = load_script("eval_speed")
    vlm, plan, collator = tiny_eval(tmp_path, tiny_run.easy_vqa("qa", images=3, split="test", limit=7), batch_size=3,
                                    evaluator="exact_match")
    prompts = [plan.template.prompt_ids(prompt_turns(s), vlm.tokenizer) for s in plan.samples]
    in_file_order = batches(list(range(7)), 3)
    assert batches(length_order(prompts, visual_tokens(vlm)), 3) != in_file_order

    old = bench.previous_predictions(vlm, plan, collator)
    new = [r["prediction"] for r in bench.current_predictions(vlm, plan, collator)]
    assert len(set(old)) > 1  # the items get different answers, so a mix-up would show
    assert bench.first_difference(old, new, plan.samples) is None
    assert bench.first_difference(old, new[::-1], plan.samples) is not None
