"""Evaluation speed: the previous generation loop against `ablate.eval.generation`, same model and items.

Both evaluate the same trained model on the same items with the same collator, batch size,
template and `max_new_tokens`, one after the other in one process (`--rounds N` alternates
them N times, old first):

- old: the loop ablate ran before (kept below as `previous_predictions`, with what
  `VisionLanguageModel.generate` did then): batches in file order, each prompt run whole
  through the LLM, each batch generating until all its rows have produced EOS or
  `max_new_tokens`;
- new: `generate_records` (batches of similar spliced length, the prefix all rows of a batch
  share run once, per-row stop at EOS or the template's stop string).

The greedy predictions must be identical (the script stops with the first difference
otherwise). Prints each mode's seconds, the load average around them, and last `ratio <old/new>`.

    python benchmarks/eval_speed.py --run runs/tiny_scienceqa-<hash>    # a finished run folder
    python benchmarks/eval_speed.py --out /tmp/sqa                       # trains recipes/tiny_scienceqa.yaml's stages there first
    python benchmarks/eval_speed.py --run DIR --limit 128 --rounds 2     # a quicker check
    python benchmarks/eval_speed.py --run DIR --option-scoring           # also time option scoring (not in the ratio)
    python benchmarks/eval_speed.py --run DIR --old-threads 2            # the old loop at torch's default thread count
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def previous_predictions(vlm, plan, collator) -> list[str]:
    """The evaluation loop before length-sorted batches, stop strings and the shared prefix, as
    it generated: batches in file order, each prompt run whole through the LLM."""
    import torch

    from ablate.eval.generation import on_device, prompt_turns

    tokenizer = vlm.tokenizer
    rows = [{"id": s["id"], "image": s.get("image"), "input_ids": plan.template.prompt_ids(prompt_turns(s), tokenizer)}
            for s in plan.samples]
    predictions: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(rows), plan.batch_size):
            batch = on_device(collator(rows[start : start + plan.batch_size]), vlm)
            embeds, mask, _ = vlm.embed_inputs(batch["input_ids"], batch["attention_mask"], None,
                                               batch.get("pixel_values"), batch.get("image_features"),
                                               padding_side="left")
            new_tokens = vlm.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=plan.max_new_tokens,
                                          do_sample=False, num_beams=1, pad_token_id=vlm.pad_token_id)
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            predictions.extend(plan.template.clean_prediction(text) for text in texts)
    return predictions


def current_predictions(vlm, plan, collator, option_scoring: bool = False) -> list[dict]:
    from ablate.eval.generation import generate_records

    return generate_records(vlm, plan.samples, template=plan.template, evaluator=plan.evaluator, collator=collator,
                            tokenizer=vlm.tokenizer, batch_size=plan.batch_size, max_new_tokens=plan.max_new_tokens,
                            option_scoring=option_scoring)


def trained(args):
    """(the trained model, the recipe whose eval to run): --run, or recipes/tiny_scienceqa.yaml's
    stages trained (without its eval) under --out, evaluated with that recipe's eval."""
    from ablate.recipe.loading import load_recipe
    from ablate.run.runner import run_recipe
    from ablate.run.trained import load_trained

    if args.run:
        run = load_trained(args.run)
        return run.vlm, run.recipe
    out = Path(args.out).resolve()
    recipe = load_recipe(REPO / "recipes" / "tiny_scienceqa.yaml",
                         [f"output_dir={out / 'runs'}", f"tracking.tracking_uri=sqlite:///{out / 'mlflow.db'}"])
    run_dir = run_recipe(recipe.model_copy(update={"eval": None})).run_dir
    return load_trained(run_dir).vlm, recipe


def timed(label: str, fn):
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.1f} s (load average {load:.2f} before, {os.getloadavg()[0]:.2f} after)", flush=True)
    return seconds, result


def first_difference(old: list[str], new: list[str], samples) -> str | None:
    for sample, a, b in zip(samples, old, new):
        if a != b:
            return f"item {sample['id']}: old {a!r}, new {b!r}"
    return None if len(old) == len(new) else f"{len(old)} old predictions, {len(new)} new"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finished run folder (default: train tiny_scienceqa under --out)")
    parser.add_argument("--out", default="eval_speed_runs", help="where to train when --run is not given")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items (default: all 1,000)")
    parser.add_argument("--rounds", type=int, default=1, help="old/new pairs, alternating (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both modes (default 1)")
    parser.add_argument("--old-threads", type=int, default=None,
                        help="torch threads for the old mode only (e.g. 2, torch's default that `ablate run` used "
                        "before it chose a count); default: --threads")
    parser.add_argument("--option-scoring", action="store_true", help="also time the log-likelihood scoring of options")
    args = parser.parse_args()

    import torch

    from ablate.data.collate import EvalCollator
    from ablate.run.evaluation import eval_plan

    torch.set_num_threads(args.threads)
    vlm, recipe = trained(args)
    plan = eval_plan(recipe)
    plan.samples = plan.samples[: args.limit] if args.limit else plan.samples
    collator = EvalCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor,
                            image_aspect_ratio=plan.image_aspect_ratio)
    old_threads = args.old_threads or args.threads
    print(f"{len(plan.samples)} items, batch {plan.batch_size}, max_new_tokens {plan.max_new_tokens}, "
          f"threads: old {old_threads}, new {args.threads}; {len(os.sched_getaffinity(0))} CPUs", flush=True)
    old_s, new_s = [], []
    for _ in range(args.rounds):
        torch.set_num_threads(old_threads)
        seconds, old = timed("old", lambda: previous_predictions(vlm, plan, collator))
        old_s.append(seconds)
        torch.set_num_threads(args.threads)
        seconds, records = timed("new", lambda: current_predictions(vlm, plan, collator))
        new_s.append(seconds)
        if (difference := first_difference(old, [r["prediction"] for r in records], plan.samples)) is not None:
            sys.exit(f"predictions differ: {difference}")
    accuracy = plan.evaluator.score(records)["accuracy"]
    print(f"identical predictions on {len(old)} items (accuracy {accuracy:.1f})")
    if args.option_scoring:
        seconds, scored = timed("new with option scoring", lambda: current_predictions(vlm, plan, collator, True))
        picked = sum(float(r["loglik_correct"]) for r in scored) / len(scored)
        print(f"option scoring: {seconds - min(new_s):.1f} s more; accuracy_loglik {100 * picked:.1f}")
    print(f"old {sum(old_s):.1f} s, new {sum(new_s):.1f} s over {args.rounds} round(s)")
    print(f"ratio {sum(old_s) / sum(new_s):.2f}")


if __name__ == "__main__":
    main()
