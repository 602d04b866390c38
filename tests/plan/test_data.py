"""A stage's records and lengths: measured from its files, or the documented sizes without them."""

from __future__ import annotations

import json

import pytest

from plan_helpers import MODEL, cli, cli_json, stage, write

from ablate.data.paper_data import documented
from ablate.plan.data import documented_parts


def llava_json(tmp_path, records: list[dict]) -> dict:
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return {"type": "single", "source": {"type": "llava_json", "path": str(path), "image_root": str(tmp_path / "images")}}


def turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def test_lengths_are_tokenized_with_visual_tokens_and_cut_at_max_length(tiny_zoo, tmp_path, capsys):
    records = [{"id": f"s{n}", "image": "a.png", "conversations": turns("<image>\nWhat?", "A red square.")}
               for n in range(4)]
    records += [{"id": "text", "conversations": turns("Hello there?", "Hi.")},
                {"id": "long", "image": "a.png", "conversations": turns("<image>\nTell me.", "word " * 400)},
                {"id": "bad", "image": "missing.png", "conversations": turns("<image>\nWhat?", "Blue.")}]
    data = llava_json(tmp_path, records)
    recipe = {"name": "lengths", "model": MODEL, "stages": [stage("chat", data, template="vicuna_v1")]}
    # under the default on_bad_sample: error, the run would stop at the missing image: so does the plan
    code, out = cli(capsys, "plan", write(tmp_path / "r.yaml", recipe), "--gpus", "1")
    assert code == 2 and "Traceback" not in out
    assert "sample 'bad': image file not found" in " ".join(out.split()) and "missing.png" in out
    recipe["data"] = {"on_bad_sample": "skip"}
    planned = cli_json(capsys, "plan", write(tmp_path / "r.yaml", recipe), "--gpus", "1")["stages"][0]
    assert planned["records"] == 6  # the record whose image is missing is left out, as the run would
    assert "1 bad records left out" in planned["data"] and "tokenized with zoo:tiny-llama" in planned["data"]
    lengths = planned["length_distribution"]
    assert lengths["max"] == 128  # the long record is cut at max_length
    assert lengths["min"] < 64 < lengths["median"]  # the text-only record gets no visual tokens
    assert planned["sequence_for_memory"] == 128


@pytest.mark.parametrize("block, records", [
    ({"type": "llava_instruct_conv_5d_10c", "conversation": "d/conversation_58k.json", "detail": "d/detail_23k.json",
      "complex_reasoning": "d/complex_reasoning_77k.json", "image_root": "d/coco"}, 58_000 + 0.05 * 23_000 + 0.1 * 77_000),
    ({"type": "llava_instruct_conv_only", "conversation": "d/conversation_58k.json", "detail": "d/detail_23k.json",
      "image_root": "d/coco"}, 58_000),
    ({"type": "llava_v1_5_mix665k", "path": "data/llava_v1_5_mix665k.json", "image_root": "data"}, 665_298),
    ({"type": "single", "source": {"type": "scienceqa", "root": "data/ScienceQA", "split": "train"}}, 12_726),
    ({"type": "inline", "sources": [{"source": {"type": "llava_json", "path": "x/blip_laion_cc_sbu_558k.json"},
                                     "fraction": 0.5}]}, 279_064),
])
def test_documented_sizes_follow_what_the_block_keeps(block, records):
    assert sum(kept for _, kept in documented_parts(block)) == pytest.approx(records)


def test_only_the_documented_split_matches():
    assert documented("data/ScienceQA", "train").records == 12_726
    assert documented("data/ScienceQA", "test") is None
    assert documented("elsewhere/chat.json") is None  # CC-595K is named by its folder too
    assert documented("/big/LLaVA-CC3M-Pretrain-595K/chat.json").records == 595_375
