"""The rehearsal kit: checkpoints laid out like the hub repos and data sets in their released
layouts, read through ablate's own loaders; built once, rebuilt when damaged or outdated."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ablate.data.mixtures.llava import INSTRUCT_FILES
from ablate.errors import AblateError
from ablate.registry import registries
from ablate.zoo import kit as kit_module
from ablate.zoo.kit import ensure_kit, kit_problem

VICUNA_FILES = {  # lmsys' repos: 7B in 2 shards, 13B in 3; tokenizer.model and no tokenizer.json
    "7b": ["config.json", "generation_config.json", "pytorch_model-00001-of-00002.bin",
           "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "special_tokens_map.json",
           "tokenizer.model", "tokenizer_config.json"],
    "13b": ["config.json", "generation_config.json", "pytorch_model-00001-of-00003.bin",
            "pytorch_model-00002-of-00003.bin", "pytorch_model-00003-of-00003.bin", "pytorch_model.bin.index.json",
            "special_tokens_map.json", "tokenizer.model", "tokenizer_config.json"],
}


@pytest.fixture
def kit(rehearsal_kit):
    return rehearsal_kit


def source(kind: str, **config):
    return registries().data_source.get(kind).build(config)


@pytest.mark.parametrize("size, version, width, legacy", [
    ("7b", "v1.3", 48, True), ("13b", "v1.3", 64, True), ("7b", "v1.5", 48, False), ("13b", "v1.5", 64, False),
])
def test_vicunas_are_laid_out_like_lmsys_repos_and_load(kit, size, version, width, legacy):
    folder = kit.checkpoint(f"lmsys/vicuna-{size}-{version}")
    assert sorted(p.name for p in folder.iterdir()) == VICUNA_FILES[size]
    llm = registries().llm.get("hf_causal_lm").build({"name_or_path": str(folder), "dtype": "bfloat16"})
    config = llm.model.config
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (width, 2, len(llm.tokenizer))
    assert llm.tokenizer.legacy is legacy  # v1.3 says nothing: the slow tokenizer's default, legacy
    assert (llm.tokenizer.bos_token_id, llm.tokenizer.eos_token_id, llm.tokenizer.pad_token) == (1, 2, "<unk>")


@pytest.mark.parametrize("repo, size, tokens", [
    ("openai/clip-vit-large-patch14", 224, 256), ("openai/clip-vit-large-patch14-336", 336, 576),
])
def test_clip_l_towers_load_with_their_real_preprocessor_configs(kit, repo, size, tokens):
    folder = kit.checkpoint(repo)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    assert json.loads((folder / "preprocessor_config.json").read_text())["crop_size"] == size
    encoder = registries().encoder.get("hf_clip").build({"name_or_path": str(folder), "feature_layer": -2})
    assert (encoder.image_size, encoder.num_tokens, encoder.feature_dim) == (size, tokens, 32)


def test_each_projector_release_fits_its_own_llm_size_only(kit):
    """LLaVA's mm_projector.bin (keys model.mm_projector.*) loads into a linear connector from
    CLIP-L's width to its Vicuna's, and the 13B one into a 7B connector fails as at full scale."""
    import torch

    from ablate.components.connectors.modules import LinearConnector
    from ablate.model.connector_weights import load_connector_weights

    for size, width in (("7b", 48), ("13b", 64)):
        release = kit.checkpoint(f"liuhaotian/llava-pretrain-vicuna-{size}-v1.3")
        assert sorted(torch.load(release / "mm_projector.bin", weights_only=True)) == [
            "model.mm_projector.bias", "model.mm_projector.weight"]
        load_connector_weights(LinearConnector(32, width, 256), release)
    with pytest.raises(AblateError, match=r"weight: file has shape \[64, 32\], connector expects \[48, 32\]"):
        load_connector_weights(LinearConnector(32, 48, 256), kit.checkpoint("liuhaotian/llava-pretrain-vicuna-13b-v1.3"))


@pytest.mark.parametrize("size, width", [("7b", 48), ("13b", 64)])
def test_llava_1_5_projector_releases_load_into_its_mlp(kit, size, width):
    from ablate.components.connectors.modules import MLPConnector
    from ablate.model.connector_weights import load_connector_weights

    release = kit.checkpoint(f"liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-{size}-v1.5")
    load_connector_weights(MLPConnector(32, width, 576, depth=2, activation="gelu", hidden_dim=width), release)


def test_llava_training_sets_read_through_their_sources(kit):
    counts = {"LLaVA-Pretrain/blip_laion_cc_sbu_558k.json": 64, "LLaVA-CC3M-Pretrain-595K/chat.json": 32,
              "LLaVA-Instruct-150K/llava_instruct_150k.json": 34}
    roots = {"LLaVA-Pretrain": "LLaVA-Pretrain/images", "LLaVA-CC3M-Pretrain-595K": "LLaVA-CC3M-Pretrain-595K/images",
             "LLaVA-Instruct-150K": "coco/train2017"}
    for path, count in counts.items():
        samples = source("llava_json", path=str(kit.data(path)), image_root=str(kit.data(roots[path.split("/")[0]]))).samples()
        assert len(samples) == count and all(Path(s["image"]).is_file() for s in samples), path
    files = {field: str(kit.data(f"LLaVA-Instruct-150K/{name}")) for field, (name, _) in INSTRUCT_FILES.items()}
    instruct = registries().mixture.get("llava_instruct_conv_5d_10c").build(
        {**files, "image_root": str(kit.data("coco/train2017"))}).samples()
    assert sorted(s["data_type"] for s in instruct).count("conversation") == 12 and len(instruct) == 14  # 5%, 10%: 1 each


def test_mix665k_holds_every_kind_of_record(kit):
    records = json.loads(kit.data("llava_v1_5_mix665k.json").read_text())
    folders = {r["image"].split("/")[0] for r in records if "image" in r}
    assert folders == {"coco", "gqa", "ocr_vqa", "textvqa", "vg"}
    text_only = [r for r in records if "image" not in r]
    assert text_only and all(r["model"] == "" for r in text_only)
    assert any(r["conversations"][0]["from"] == "gpt" for r in text_only)  # opens with a gpt turn
    assert any(r["conversations"][-1]["from"] == "human" for r in text_only)  # ends with a human turn
    mix = registries().mixture.get("llava_v1_5_mix665k").build(
        {"path": str(kit.data("llava_v1_5_mix665k.json")), "image_root": str(kit.data("."))}, on_bad_sample="skip")
    samples = mix.samples()
    assert len(samples) + len(mix.skipped) == len(records) == 40
    assert any(s["image"] is None for s in samples) and all(Path(s["image"]).is_file() for s in samples if s["image"])


def test_benchmarks_read_through_their_sources(kit):
    sqa = {split: source("scienceqa", root=str(kit.data("ScienceQA")), split=split).samples() for split in ("train", "test")}
    assert (len(sqa["train"]), len(sqa["test"])) == (32, 8)
    assert not (kit.data("ScienceQA") / "ablate_scienceqa.json").exists()  # the release has no generator marker
    bench = source("llava_bench", path=str(kit.data("llava-bench-coco")), image_root=str(kit.data("coco/val2014")))
    prepared = source("llava_json", path=str(kit.data("llava-bench-coco/qa90_llava.json")),
                      image_root=str(kit.data("coco/val2014")))
    assert [s["conversations"] for s in bench.samples()] == [s["conversations"] for s in prepared.samples()]
    assert {s["data_type"] for s in bench.samples()} == {"conv", "detail", "complex"}
    gqa = source("llava_json", path=str(kit.data("eval/gqa/testdev_balanced_llava.json")),
                 image_root=str(kit.data("gqa/images"))).samples()
    questions = json.loads(kit.data("eval/gqa/testdev_balanced_questions.json").read_text())
    assert [s["conversations"][1]["value"] for s in gqa] == [q["answer"] for q in questions.values()]


def _fake_kit(root: Path) -> None:
    (root / "hub").mkdir()
    (root / "hub" / "weights.bin").write_bytes(b"0" * 100)


def test_the_kit_is_built_once_and_rebuilt_when_damaged_or_outdated(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    builds = []
    monkeypatch.setattr(kit_module, "write_kit", lambda root: (builds.append(root), _fake_kit(root)))
    said = []
    threads = [threading.Thread(target=ensure_kit, kwargs={"say": said.append}) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and said == [f"building the rehearsal kit in {tmp_path / 'rehearsal'} (it is not built)"]
    kit = ensure_kit()
    assert len(builds) == 1 and kit_problem(kit.root) is None
    (kit.root / "hub" / "weights.bin").write_bytes(b"0" * 50)  # truncated
    assert kit_problem(kit.root) == "hub/weights.bin has 50 bytes, 100 when written"
    ensure_kit(say=said.append)
    assert len(builds) == 2 and said[-1].endswith("(hub/weights.bin has 50 bytes, 100 when written)")
    (kit.root / "kit.json").write_text(json.dumps({"version": kit_module.KIT_VERSION - 1}))
    ensure_kit()
    assert len(builds) == 3 and (kit.root / "hub" / "weights.bin").stat().st_size == 100
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rehearsal.") and p.is_dir()] == []
