"""Offline tiny-model zoo: small checkpoints with seeded random or pretrained weights.

Each entry is built from a small config (and, for the `*-easyvqa` entries, pretraining once when
first built: contrastive for the CLIP, `ablate.zoo.pretrain`, 1.5 minutes on 2 cores; language
modelling for the Llamas, `ablate.zoo.text_pretrain`, 7 minutes), saved with `save_pretrained`
(safetensors) into `$ABLATE_HOME/zoo/<name>`, and loaded afterwards by the same `from_pretrained`
code as real checkpoints. Recipes name them as `name_or_path: zoo:tiny-llama`; `resolve_checkpoint` turns
that into a local folder, building it on first use.

The sizes below are plain dicts so they are easy to tune; changing one makes the next
`resolve_checkpoint` rebuild that entry (the spec is stored next to the weights).
"""

from __future__ import annotations

import functools

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, did_you_mean
from ablate.paths import file_in_the_way
from ablate.zoo.manifest import manifest_problem, write_whole

ZOO_PREFIX = "zoo:"
SPEC_FILE = "zoo.json"
FORMAT_VERSION = 1  # bump when the build code changes what it writes

# easy-VQA images are 64x64: patch 8 gives 8x8 = 64 patches (+ CLS for CLIP).
TINY_CLIP = dict(
    image_size=64,
    patch_size=8,
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    projection_dim=128,
)
# Contrastive pretraining (ablate.zoo.pretrain): 1000 steps of 24 distinct captions, about 1.5
# minutes on 2 cores. Linear probes on the frozen layer -2 features of easy-VQA test images
# (benchmarks/clip_probe.py): shape 0.63 untrained -> 0.81, colour 0.93 -> 0.99.
CLIP_PRETRAIN = dict(steps=1000, lr=2e-3, batch_size=24)
# Language pretraining (ablate.zoo.text_pretrain) on text about easy-VQA train images: 1000 steps of
# 64 documents, each its own row, about 7 minutes on 2 cores. benchmarks/zoo_lm_probe.py: it answers
# the yes/no questions of 400 test images, written as text, 1.000 right (the "absent" prior: 0.825).
LLAMA_PRETRAIN = dict(steps=1000, lr=1e-3, batch_size=64)
# Continued from tiny-llama-easyvqa's weights, with half the documents answering their questions
# across a passage of 30 to 150 tokens (ablate.zoo.text_pretrain.PASSAGE_SENTENCES, not scored):
# the distance from a ScienceQA question to the solution that follows its lecture.
LLAMA_RECALL_PRETRAIN = dict(steps=300, lr=5e-4, batch_size=32, recall_share=0.5)
# Continued from tiny-llama-easyvqa-sqa's weights, with half the documents stating names, numbers and
# words and asking for one of them back, mostly across a passage (ablate.zoo.text_pretrain.copy_document):
# the copying from far back that a ScienceQA solution written after its lecture needs.
LLAMA_COPY_PRETRAIN = dict(steps=300, lr=5e-4, batch_size=32, recall_share=0.5, copy_share=0.5)
# SigLIP has no projection head in its vision config; otherwise the same tower.
TINY_SIGLIP = {k: v for k, v in TINY_CLIP.items() if k != "projection_dim"}
# vocab_size is filled from the zoo tokenizer at build time.
TINY_LLAMA = dict(
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=1024,
    tie_word_embeddings=False,
)
# About 2.6x tiny-llama's parameters, for a 7B-vs-13B-style scale ablation.
TINY_LLAMA_LARGE = dict(
    hidden_size=384,
    intermediate_size=1024,
    num_hidden_layers=5,
    num_attention_heads=6,
    num_key_value_heads=6,
    max_position_embeddings=1024,
    tie_word_embeddings=False,
)

# --scale small: about 10x the tiny models' parameters, pretrained the same way for longer, built
# in minutes on one GPU (the pretraining runs on CUDA where there is one). small-clip: 6 x 320
# (about 7.4M parameters in its layers, 9.4x tiny-clip's); small-llama: 8 x 640 (about 41M,
# 10.9x tiny-llama's 3.8M); small-llama-large: 10 x 960 (about 2.7x small-llama), the 13B arm.
SMALL_CLIP = dict(TINY_CLIP, hidden_size=320, intermediate_size=1280, num_hidden_layers=6,
                  num_attention_heads=5, projection_dim=320)
SMALL_LLAMA = dict(TINY_LLAMA, hidden_size=640, intermediate_size=1728, num_hidden_layers=8,
                   num_attention_heads=10, num_key_value_heads=10)
SMALL_LLAMA_LARGE = dict(TINY_LLAMA, hidden_size=960, intermediate_size=2560, num_hidden_layers=10,
                         num_attention_heads=15, num_key_value_heads=15)
SMALL_CLIP_PRETRAIN = dict(CLIP_PRETRAIN, steps=3000, lr=1e-3)
SMALL_LLAMA_PRETRAIN = dict(LLAMA_PRETRAIN, steps=4000, lr=5e-4, batch_size=32)


@dataclass(frozen=True)
class ZooSpec:
    name: str
    family: str  # "clip" | "siglip" | "llama": which builder writes it
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    description: str = ""
    # Pretraining settings (`ablate.zoo.pretrain` for CLIP, `ablate.zoo.text_pretrain` for Llama);
    # None = seeded random weights.
    pretrain: dict[str, Any] | None = None
    # Another entry whose built weights the pretraining continues from (Llama only), instead of
    # seeded random weights.
    start_from: str | None = None
    # What the Llama's tokenizer is trained on (ablate.zoo.tokenizer.VOCABULARIES).
    vocabulary: str = "easyvqa"
    # Built only when named (or loaded): no shipped recipe loads it, so `ablate zoo build tiny`
    # does not spend its pretraining minutes on it. Not part of the fingerprint.
    on_request: bool = False

    def fingerprint(self) -> dict[str, Any]:
        fp = {"name": self.name, "family": self.family, "config": self.config, "seed": self.seed,
              "format": FORMAT_VERSION}
        if self.vocabulary != "easyvqa":  # the default stays out, so entries built before it stay built
            fp["vocabulary"] = self.vocabulary
        if self.start_from is not None:  # rebuilt when the entry it starts from changes
            fp["start_from"] = ZOO[self.start_from].fingerprint()
        return fp if self.pretrain is None else {**fp, "pretrain": self.pretrain}


ZOO: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in (
        ZooSpec("tiny-clip", "clip", TINY_CLIP, seed=1, description="CLIP ViT, 64px, patch 8, 4x128"),
        ZooSpec("tiny-clip-easyvqa", "clip", TINY_CLIP, seed=1, pretrain=CLIP_PRETRAIN,
                description="tiny-clip, CLIP-pretrained on easy-VQA captions (1.5 min)"),
        ZooSpec("tiny-siglip", "siglip", TINY_SIGLIP, seed=2, description="SigLIP ViT, 64px, patch 8, 4x128"),
        ZooSpec("tiny-llama", "llama", TINY_LLAMA, seed=3, description="Llama, 4 layers x 256, zoo tokenizer"),
        ZooSpec("tiny-llama-easyvqa", "llama", TINY_LLAMA, seed=3, pretrain=LLAMA_PRETRAIN,
                description="tiny-llama, language-pretrained on text about easy-VQA train images (7 min)"),
        ZooSpec("tiny-llama-easyvqa-recall", "llama", TINY_LLAMA, seed=3, pretrain=LLAMA_RECALL_PRETRAIN,
                start_from="tiny-llama-easyvqa", on_request=True,
                description="tiny-llama-easyvqa, pretrained further on its documents with half of them "
                            "answering across a passage of unrelated sentences (30 to 150 tokens; "
                            "benchmarks/zoo_lm_probe.py's; about 15 min, built when named)"),
        ZooSpec("tiny-llama-easyvqa-sqa", "llama", TINY_LLAMA, seed=3, pretrain=LLAMA_PRETRAIN,
                vocabulary="easyvqa+scienceqa",
                description="tiny-llama-easyvqa with a tokenizer that also knows the embedded ScienceQA's "
                            "words (1,536 pieces: a lecture 57 tokens long on average instead of 89)"),
        ZooSpec("tiny-llama-easyvqa-copy", "llama", TINY_LLAMA, seed=3, pretrain=LLAMA_COPY_PRETRAIN,
                vocabulary="easyvqa+scienceqa", start_from="tiny-llama-easyvqa-sqa",
                description="tiny-llama-easyvqa-sqa, pretrained further with half of its documents asking for a "
                            "name, number or word stated before a passage (copying from far back)"),
        ZooSpec("tiny-llama-large", "llama", TINY_LLAMA_LARGE, seed=4,
                description="Llama, 5 layers x 384 (~2.6x tiny-llama), zoo tokenizer"),
        ZooSpec("tiny-llama-large-easyvqa", "llama", TINY_LLAMA_LARGE, seed=4, pretrain=LLAMA_PRETRAIN,
                description="tiny-llama-large, language-pretrained like tiny-llama-easyvqa "
                            "(11.5 min with the corpus before 2026-12-07; not re-timed)"),
        ZooSpec("small-clip-easyvqa", "clip", SMALL_CLIP, seed=5, pretrain=SMALL_CLIP_PRETRAIN,
                description="CLIP ViT, 64px, patch 8, 6x320 (~10x tiny-clip), CLIP-pretrained on easy-VQA captions "
                            "(3,000 steps: minutes on a GPU)"),
        ZooSpec("small-llama-easyvqa", "llama", SMALL_LLAMA, seed=6, pretrain=SMALL_LLAMA_PRETRAIN,
                description="Llama, 8 layers x 640 (~10x tiny-llama), language-pretrained on text about easy-VQA "
                            "train images (4,000 steps: minutes on a GPU)"),
        ZooSpec("small-llama-large-easyvqa", "llama", SMALL_LLAMA_LARGE, seed=7, pretrain=SMALL_LLAMA_PRETRAIN,
                description="Llama, 10 layers x 960 (~2.7x small-llama), language-pretrained like small-llama-easyvqa"),
    )
}


def ablate_home() -> Path:
    """$ABLATE_HOME (default ~/.cache/ablate); AblateError when it, or a parent, is a file."""
    home = Path(os.environ.get("ABLATE_HOME") or Path.home() / ".cache" / "ablate").expanduser()
    blocker = file_in_the_way(home)
    if blocker is not None:
        raise AblateError(f"ABLATE_HOME {str(home)!r} cannot be a folder: {blocker} is a file")
    return home


def zoo_dir() -> Path:
    return ablate_home() / "zoo"


def get_spec(name: str) -> ZooSpec:
    try:
        return ZOO[name]
    except KeyError:
        raise AblateError(
            f"unknown zoo model {name!r}.{did_you_mean(name, ZOO)} Zoo models: {', '.join(sorted(ZOO))}"
        ) from None


def is_built(name: str, dest: str | Path | None = None) -> bool:
    """True when `dest` (default: the zoo folder) holds this entry built from the current spec."""
    spec = get_spec(name)
    path = Path(dest) if dest is not None else zoo_dir() / name
    try:
        return json.loads((path / SPEC_FILE).read_text()) == spec.fingerprint()
    except (OSError, ValueError):
        return False


def build(name: str, dest: str | Path | None = None, force: bool = False, progress=None) -> Path:
    """Build zoo entry `name` into `dest` (default `$ABLATE_HOME/zoo/<name>`); return the folder.

    `progress` (a rich Progress) gets a bar for entries that take a while to build (pretraining).

    Safe to call from several processes: a file lock serialises builders and the folder
    appears in one rename, complete or not at all.
    """
    from filelock import FileLock

    spec = get_spec(name)
    dest = Path(dest) if dest is not None else zoo_dir() / name
    if not force and is_built(name, dest):
        return checked(name, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        if not force and is_built(name, dest):  # another process finished it meanwhile
            return checked(name, dest)
        def fill(staging: Path) -> None:
            with _quiet_progress(), _callers_generators_kept():
                _BUILDERS[spec.family](spec, staging, progress)
            (staging / SPEC_FILE).write_text(json.dumps(spec.fingerprint(), indent=2, sort_keys=True))

        write_whole(dest, fill)
    return dest


def checked(name: str, dest: Path) -> Path:
    """`dest` if its files are those written when it was built; AblateError saying how to rebuild."""
    problem = manifest_problem(dest)
    if problem:
        raise AblateError(
            f"zoo checkpoint {name!r} in {dest} is damaged: {problem}. Rebuild it with "
            f"`ablate zoo build {name} --force` (or delete the folder and run again)."
        )
    return dest


def entries_of_size(size: str) -> list[str]:
    """The entries of one scale's size, "tiny" or "small" (`ablate zoo build tiny|small`), but
    those built only on request."""
    return [name for name, spec in ZOO.items() if name.startswith(f"{size}-") and not spec.on_request]


def build_all(names: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Build the named entries (default: all); return name -> folder."""
    return {name: build(name, force=force) for name in (names or sorted(ZOO))}


def zoo_names(model_section) -> list[str]:
    """The zoo entries a recipe's `model:` section loads (its encoder and LLM `zoo:` names)."""
    names = [getattr(getattr(model_section, c), "name_or_path", None) for c in ("encoder", "llm")]
    return [n[len(ZOO_PREFIX):] for n in names if isinstance(n, str) and n.startswith(ZOO_PREFIX)]


def resolve_checkpoint(name_or_path: str, progress=None) -> str:
    """`zoo:<name>` -> its local folder (built on first use); anything else is returned as is,
    with `~` expanded when that names an existing local path."""
    if name_or_path.startswith(ZOO_PREFIX):
        return str(build(name_or_path[len(ZOO_PREFIX):], progress=progress))
    expanded = os.path.expanduser(name_or_path)
    return expanded if expanded != name_or_path and os.path.exists(expanded) else name_or_path


def spec_config(name: str):
    """The transformers config zoo entry `name` is built with, without building it: for checks
    that need only its shapes. A Llama's vocab size is the trained zoo tokenizer's, as at build
    time (the training stops short of its target size)."""
    from transformers import CLIPVisionConfig, LlamaConfig, SiglipVisionConfig

    spec = get_spec(name)
    if spec.family == "llama":
        return LlamaConfig(**spec.config, vocab_size=zoo_vocab_size(spec.vocabulary))
    return {"clip": CLIPVisionConfig, "siglip": SiglipVisionConfig}[spec.family](**spec.config)


@functools.lru_cache(maxsize=None)
def zoo_vocab_size(vocabulary: str = "easyvqa") -> int:
    """The zoo tokenizer's vocabulary: trained again (deterministic, about a second) rather than
    taken from its target size, so a check before the build counts the parameters the build has."""
    from ablate.zoo.tokenizer import build_tokenizer

    return len(build_tokenizer(vocabulary=vocabulary))


# ---- builders: write one entry's files into an empty folder --------------------------------


@contextmanager
def _quiet_progress():
    """No "Writing model shards" bars for a few-MB checkpoint."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def _callers_generators_kept():
    """A build seeds torch, `random` and numpy for its own weights (transformers' set_seed); the
    caller's generators are put back afterwards, so whether a process built an entry first
    changes none of its later draws."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def _build_clip(spec: ZooSpec, out: Path, progress=None) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    size = spec.config["image_size"]
    image_processor = _image_processor_class("CLIPImageProcessor")(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    image_processor.save_pretrained(out)
    if spec.pretrain is not None:
        from ablate.zoo.pretrain import PretrainSettings, pretrain_clip

        pretrain_clip(spec.config, PretrainSettings(**spec.pretrain), spec.seed, out, image_processor,
                      progress=progress, label=f"zoo {spec.name}")
        return
    _seeded(spec.seed)
    CLIPVisionModel(CLIPVisionConfig(**spec.config)).save_pretrained(out, safe_serialization=True)


def _build_siglip(spec: ZooSpec, out: Path, progress=None) -> None:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    _seeded(spec.seed)
    config = SiglipVisionConfig(**spec.config)
    SiglipVisionModel(config).save_pretrained(out, safe_serialization=True)
    size = spec.config["image_size"]
    _image_processor_class("SiglipImageProcessor")(size={"height": size, "width": size}).save_pretrained(out)


def _build_llama(spec: ZooSpec, out: Path, progress=None) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from ablate.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(vocabulary=spec.vocabulary)
    config = LlamaConfig(
        **spec.config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    _seeded(spec.seed)
    # the seeded weights, or those of the entry it continues, are where language pretraining starts
    model = LlamaForCausalLM.from_pretrained(build(spec.start_from)) if spec.start_from else LlamaForCausalLM(config)
    if spec.pretrain is not None:
        from ablate.zoo.text_pretrain import TextPretrainSettings, pretrain_llama

        pretrain_llama(model, tokenizer, TextPretrainSettings(**spec.pretrain), spec.seed, out, progress=progress,
                       label=f"zoo {spec.name}")
        return
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _image_processor_class(name: str):
    """transformers 5 splits processors into a torchvision and a PIL backend; the PIL one
    needs nothing extra, so prefer it where it exists."""
    import transformers

    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


_BUILDERS = {"clip": _build_clip, "siglip": _build_siglip, "llama": _build_llama}

__all__ = ["ZOO", "ZooSpec", "build", "build_all", "entries_of_size", "resolve_checkpoint", "zoo_names", "is_built", "zoo_dir", "ablate_home",
           "spec_config"]
