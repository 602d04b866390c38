"""A machine set up for the paper-scale studies, in miniature: the checkpoints the paper recipes
name sit in a Hugging Face hub cache, laid out file for file like the real repos
(`ablate.zoo.hub_layouts`) and shrunk to 2 small layers with random weights; every data file
and folder the cells name exists (empty: `--check` reads no data).

The shrunk widths keep the real ones' relations: the CLIP towers give 32-wide features, the
13B Vicunas are 64 wide and the 7B one 32 wide.
"""

from __future__ import annotations

import random
from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"
CLIP_WIDTH, VICUNA_13B_WIDTH, VICUNA_7B_WIDTH = 32, 64, 32
SMALL_VICUNA = dict(hidden_size=VICUNA_7B_WIDTH, intermediate_size=64, num_attention_heads=4, num_key_value_heads=4)
WORDS = "the a red blue circle square what is this image shows".split()


def cached_snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in hub cache `cache` (models--org--name/snapshots/<rev>),
    with refs/main naming it, as `huggingface_hub` lays out a download."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return repo / "snapshots" / REVISION


def paper_hub_cache(root: Path) -> Path:
    """A hub cache under `root` with every checkpoint the paper recipes name."""
    from ablate.zoo.hub_layouts import write_clip_l336_like, write_vicuna_like
    from ablate.zoo.tokenizer import train_sentencepiece

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(300)]
    model = train_sentencepiece(corpus, root / "tokenizer.model", vocab_size=400)
    cache = root / "hub"
    for repo in ("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14-336"):
        write_clip_l336_like(cached_snapshot(cache, repo))
    write_vicuna_like(cached_snapshot(cache, "lmsys/vicuna-13b-v1.3"), model, version="v1.3", shards=1)
    write_vicuna_like(cached_snapshot(cache, "lmsys/vicuna-7b-v1.3"), model, version="v1.3", shards=1, **SMALL_VICUNA)
    write_vicuna_like(cached_snapshot(cache, "lmsys/vicuna-13b-v1.5"), model, version="v1.5", shards=1)
    return cache


def place_named_files(study_path: Path, scale: str = "paper") -> list[str]:
    """Create, empty, every data file and folder the study's cells name; returns them."""
    from ablate.study.cells import cell_recipe, expand_cells, seeds_for
    from ablate.study.named_files import named_paths
    from ablate.study.schema import load_study

    study = load_study(study_path)
    placed = set()
    for cell in expand_cells(study, scale, seeds_for(study, scale)):
        recipe = cell_recipe(study, scale, cell)
        blocks = [s.data for s in recipe.stages] + ([recipe.eval.data] if recipe.eval and recipe.eval.data else [])
        for block in blocks:
            for _, value, kind in named_paths(block.model_dump(mode="json"), ()):
                path = Path(value)
                if kind == "folder":
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                placed.add(value)
    return sorted(placed)


def write_llava_projector(path: Path, in_dim: int, out_dim: int) -> Path:
    """A stage-1 projector as LLaVA saves it: mm_projector.bin with `model.mm_projector.` keys."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model.mm_projector.weight": torch.zeros(out_dim, in_dim),
                "model.mm_projector.bias": torch.zeros(out_dim)}, path)
    return path
