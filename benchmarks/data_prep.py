"""Time to the first training step of a stage on mix665k, and the peak memory on the way.

Generates a seeded file in the layout of LLaVA-1.5's llava_v1_5_mix665k.json (665K records,
text-only, multi-turn; see mix665k_shape.py) with its images, then runs what `ablate run` does
before a stage's first step, each step through ablate's own code, in a fresh process:

  1. the stage's data: the `llava_v1_5_mix665k` mixture, built through the registry;
  2. the stage key's digest of every sample (`ablate.run.stage_inputs.samples_digest`);
  3. the dataset (`ablate.data.pipeline.build_dataset`, with a cold cache);
  4. the first batch out of the Trainer's own train DataLoader (`VLMTrainer.get_train_dataloader`,
     ablate's training arguments, so its sampler and workers) through ablate's `VLMCollator`,
     which loads and preprocesses the batch's images with the tiny CLIP's image processor.

"First step" here means the first batch handed to the model: the model's forward and backward
are left out (no weights are needed; they cost the same whatever the data path). The zoo's
tiny tokenizer is used (a SentencePiece-style BPE with 1,536 pieces; it cuts English into
about 2.5 tokens a word, twice Llama's count, so tokenizing costs more here than with Vicuna's).

The same steps run side by side on the first `--compare` records with the code of `--before`
(a git revision, extracted with `git archive`) and with this tree; the ratio is before/after.

    python benchmarks/data_prep.py                      # 665K records; 20K side by side
    python benchmarks/data_prep.py --records 20000 --compare 2000   # a quick check
    python benchmarks/data_prep.py --before-full        # also the old path on all records (~35 min)

The last line states time to first step and peak RSS against the goal (<= 180 s, <= 4 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GOAL_SECONDS, GOAL_RSS_GB = 180.0, 4.0


def measure(path: Path, image_root: Path, cache: Path, args) -> dict:
    """Steps 1-4 above in this process; seconds per step and the peak RSS."""
    from ablate.registry import registries
    from ablate.run.stage_inputs import samples_digest

    tokenizer, image_processor = tiny_tokenizer_and_processor()
    registry, times = registries(), {}
    start = time.perf_counter()
    source = registry.mixture.get("llava_v1_5_mix665k").build(
        {"path": str(path), "image_root": str(image_root)}, on_bad_sample="skip")
    template = registry.template.get(args.template).build({})
    times["digest"] = _timed(lambda: samples_digest(source))[1]
    dataset, times["dataset"] = _timed(lambda: build(source, template, tokenizer, cache, args.max_length))
    batch, times["first_batch"] = _timed(lambda: first_batch(dataset, tokenizer, image_processor, cache, args))
    times["total"] = time.perf_counter() - start
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": times, "peak_rss_gb": peak / 1e6, "rows": len(dataset), "skipped": len(source.skipped),
            "batch": {k: list(v.shape) for k, v in batch.items()}, "batch_sha256": batch_digest(batch)}


def batch_digest(batch) -> str:
    """SHA-256 of the batch's token ids, labels and attention mask: equal batches, equal digests."""
    import hashlib

    digest = hashlib.sha256()
    for key in ("input_ids", "labels", "attention_mask"):
        digest.update(batch[key].numpy().tobytes())
    return digest.hexdigest()


def build(source, template, tokenizer, cache: Path, max_length: int):
    from ablate.data.pipeline import build_dataset

    return build_dataset(source, template, tokenizer, cache_dir=cache, max_length=max_length, on_bad_sample="skip")


def first_batch(dataset, tokenizer, image_processor, cache: Path, args):
    """The first batch of the Trainer's train DataLoader, with ablate's training arguments."""
    import torch

    from ablate.data.collate import VLMCollator
    from ablate.recipe.schema import Stage
    from ablate.train.stage import training_arguments
    from ablate.train.trainer import VLMTrainer

    stage = Stage(name="instruct", data={"type": "llava_v1_5_mix665k", "path": "-", "image_root": "-"},
                  template=args.template, lr=2e-5, batch_size=args.batch, max_length=args.max_length,
                  dataloader_workers=args.workers, group_by_length=args.group_by_length)
    trainer = VLMTrainer(model=torch.nn.Linear(1, 1), args=training_arguments(stage, 0, cache / "trainer", None),
                         train_dataset=dataset, data_collator=VLMCollator(tokenizer, image_processor))
    return next(iter(trainer.get_train_dataloader()))


def tiny_tokenizer_and_processor():
    """The zoo's tokenizer and the tiny CLIP's image processor (its PIL backend, as the zoo saves it)."""
    import transformers

    from ablate.zoo.tokenizer import build_tokenizer

    processor = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return build_tokenizer(), processor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})


def _timed(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def run_measure(tree: Path, path: Path, image_root: Path, args) -> dict:
    """`measure` in a fresh process on the code in `tree`, with an empty dataset cache."""
    cache = Path(tempfile.mkdtemp(prefix="data_prep_cache_", dir=args.work))
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", str(path), str(image_root), str(cache),
               "--template", args.template, "--max-length", str(args.max_length), "--batch", str(args.batch),
               "--workers", str(args.workers), *(["--group-by-length"] if args.group_by_length else [])]
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"measuring with {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def before_tree(revision: str, work: Path) -> Path:
    """The package as it was at `revision`, extracted next to the work files."""
    tree = work / f"before_{revision}"
    if not (tree / "ablate").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "ablate"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def line(label: str, result: dict) -> str:
    s = result["seconds"]
    return (f"{label}: {result['rows']:,} rows ({result['skipped']} skipped), digest {s['digest']:.1f} s, "
            f"dataset {s['dataset']:.1f} s, first batch {s['first_batch']:.1f} s, total {s['total']:.1f} s, "
            f"peak RSS {result['peak_rss_gb']:.2f} GB")


def main(argv=None) -> None:
    args = parse(argv)
    if args.measure:
        path, image_root, cache = map(Path, args.measure)
        print(json.dumps(measure(path, image_root, cache, args)))
        return
    sys.path.insert(0, str(HERE))
    from mix665k_shape import write_mix665k_like

    args.work.mkdir(parents=True, exist_ok=True)
    full, image_root = _timed(lambda: write_mix665k_like(args.work, args.records, args.seed))[0]
    subset, _ = write_mix665k_like(args.work, args.compare, args.seed)  # the first records of the same stream
    old = before_tree(args.before, args.work)
    before, after = run_measure(old, subset, image_root, args), run_measure(REPO, subset, image_root, args)
    print(line(f"before ({args.before}), {args.compare:,} records", before))
    print(line(f"after, {args.compare:,} records", after))
    same = before["batch_sha256"] == after["batch_sha256"]
    print(f"first batch (ids, labels, mask) {'identical' if same else 'DIFFERENT'} before and after")
    if args.before_full:
        print(line(f"before ({args.before}), {args.records:,} records", run_measure(old, full, image_root, args)))
    result = run_measure(REPO, full, image_root, args)
    print(line(f"after, {args.records:,} records ({full.stat().st_size / 1e9:.2f} GB file)", result))
    total, rss = result["seconds"]["total"], result["peak_rss_gb"]
    ratio = before["seconds"]["total"] / after["seconds"]["total"]
    verdict = "meets" if total <= GOAL_SECONDS and rss <= GOAL_RSS_GB else "misses"
    print(f"time to first step {total:.1f} s (goal <= {GOAL_SECONDS:.0f} s), peak RSS {rss:.2f} GB "
          f"(goal <= {GOAL_RSS_GB:.0f} GB) on {args.records:,} records: {verdict} the goal; "
          f"{ratio:.1f}x faster than {args.before} on {args.compare:,} records")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=665_000)
    parser.add_argument("--compare", type=int, default=20_000, help="records timed side by side with --before")
    parser.add_argument("--before", default="a693c8e", help="git revision of the path to compare with")
    parser.add_argument("--before-full", action="store_true", help="also time --before on all records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", default="vicuna_v1")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=16, help="per-device batch (LLaVA-1.5's stage 2)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--group-by-length", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ablate_data_prep",
                        help="where the generated file, its images and the old code go (kept for reruns)")
    parser.add_argument("--measure", nargs=3, metavar=("FILE", "IMAGE_ROOT", "CACHE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
