from collections import Counter

import pytest
from pydantic import ValidationError

from ablate.errors import DataError

from data_helpers import record, write_json


@pytest.fixture
def typed_file(tmp_path, image_root):
    """40 conversation, 20 detail, 30 reasoning records, interleaved, with a 'type' field."""
    kinds = ["conversation"] * 40 + ["detail"] * 20 + ["reasoning"] * 30
    records = [record(f"{kind[:4]}{i}", type=kind) for i, kind in enumerate(kinds)]
    records.sort(key=lambda r: int(r["id"][4:]) % 7)
    return write_json(tmp_path / "typed.json", records)


def src(path, image_root, **extra):
    return {"type": "llava_json", "path": str(path), "image_root": str(image_root), **extra}


def mix(registries, items, on_bad_sample="error", **cfg):
    return registries.mixture.get("inline").build({"sources": items, **cfg}, on_bad_sample=on_bad_sample)


def test_count_fraction_weight_are_exact(registries, tmp_path, image_root):
    a = write_json(tmp_path / "a.json", [record(f"a{i}") for i in range(20)])
    b = write_json(tmp_path / "b.json", [record(f"b{i}") for i in range(20)])
    c = write_json(tmp_path / "c.json", [record(f"c{i}") for i in range(10)])
    items = [{"source": src(a, image_root), "count": 5},
             {"source": src(b, image_root), "fraction": 0.25},
             {"source": src(c, image_root), "weight": 1.5}]
    samples = mix(registries, items, seed=3).samples()
    per = Counter(s["id"].split("/")[0] for s in samples)
    assert per == {"a": 5, "b": 5, "c": 15}
    c_ids = [s["id"] for s in samples if s["id"].startswith("c/")]
    assert len(set(c_ids)) == 15 and sum(i.endswith("#1") for i in c_ids) == 5
    assert {i.removesuffix("#1") for i in c_ids} == {f"c/c{i}" for i in range(10)}
    # reproducible with the seed, different with another
    assert [s["id"] for s in mix(registries, items, seed=3)] == [s["id"] for s in samples]
    assert [s["id"] for s in mix(registries, items, seed=4)] != [s["id"] for s in samples]


def test_no_shuffle_keeps_source_order(registries, tmp_path, image_root):
    a = write_json(tmp_path / "a.json", [record(f"a{i}") for i in range(10)])
    samples = mix(registries, [{"source": src(a, image_root), "count": 4}], shuffle=False, seed=1).samples()
    ids = [int(s["id"].split("/a")[1]) for s in samples]
    assert len(ids) == 4 and ids == sorted(ids)


def test_data_type_shares(registries, typed_file, image_root):
    item = {"source": src(typed_file, image_root, data_type_field="type"),
            "data_types": {"conversation": 1.0, "detail": 0.05, "reasoning": 0.10}}
    samples = mix(registries, [item]).samples()
    assert Counter(s["data_type"] for s in samples) == {"conversation": 40, "detail": 1, "reasoning": 3}
    dropped = mix(registries, [{**item, "data_types": {"detail": 0.5}}]).samples()
    assert Counter(s["data_type"] for s in dropped) == {"detail": 10}  # unlisted types are dropped


def test_data_types_then_count(registries, typed_file, image_root):
    item = {"source": src(typed_file, image_root, data_type_field="type"),
            "data_types": {"conversation": 0.5, "reasoning": 1.0}, "count": 10}
    samples = mix(registries, [item]).samples()
    assert len(samples) == 10 and {s["data_type"] for s in samples} <= {"conversation", "reasoning"}


def test_missing_data_type_and_too_large_count(registries, typed_file, image_root):
    source = src(typed_file, image_root, data_type_field="type")
    with pytest.raises(DataError, match="data_types lists caption"):
        mix(registries, [{"source": source, "data_types": {"caption": 1.0}}]).samples()
    with pytest.raises(DataError, match="count 91 is more than the 90 samples"):
        mix(registries, [{"source": source, "count": 91}]).samples()


def test_item_validation(registries):
    entry = registries.mixture.get("inline")
    with pytest.raises(ValidationError, match="at most one of weight, count, fraction"):
        entry.make_config({"sources": [{"source": {"type": "easy_vqa"}, "count": 3, "weight": 2.0}]})
    with pytest.raises(ValidationError, match=r"sources\.0\.source\.stile"):
        entry.make_config({"sources": [{"source": {"type": "easy_vqa", "stile": "qa"}}]})
    with pytest.raises(ValidationError, match="unknown data_source 'easy_vq'"):
        entry.make_config({"sources": [{"source": {"type": "easy_vq"}}]})
    with pytest.raises(ValidationError, match="data_types.detail"):
        entry.make_config({"sources": [{"source": {"type": "easy_vqa"}, "data_types": {"detail": 1.5}}]})


def test_stage_data_block_validates_through_the_schema():
    from ablate.recipe.schema import Stage

    stage = Stage.model_validate({
        "name": "s", "lr": 1e-3, "template": "plain",
        "data": {"type": "inline", "sources": [{"source": {"type": "easy_vqa", "style": "caption"}, "fraction": 0.5}]},
    })
    assert stage.data.sources[0].source.style == "caption"
    with pytest.raises(ValidationError, match=r"data\.sources\.0\.source\.split"):
        Stage.model_validate({"name": "s", "lr": 1e-3, "template": "plain",
                              "data": {"type": "inline", "sources": [{"source": {"type": "easy_vqa", "split": "val"}}]}})


def test_easy_vqa_mixture_and_unique_ids(registries):
    items = [{"source": {"type": "easy_vqa", "style": "conversation", "images_limit": 30}},
             {"source": {"type": "easy_vqa", "style": "detail", "images_limit": 30}, "fraction": 0.1},
             {"source": {"type": "easy_vqa", "style": "reasoning", "images_limit": 30}, "count": 6}]
    samples = mix(registries, items).samples()
    assert Counter(s["data_type"] for s in samples) == {"conversation": 30, "detail": 3, "reasoning": 6}
    assert len({s["id"] for s in samples}) == len(samples)


def test_duplicate_names_get_an_index_and_skips_are_collected(registries, tmp_path, image_root):
    path = write_json(tmp_path / "a.json", [record("x"), record("bad", "gone.png")])
    items = [{"source": src(path, image_root)}, {"source": src(path, image_root)}]
    mixture = mix(registries, items, on_bad_sample="skip")
    assert sorted(s["id"] for s in mixture) == ["a.0/x", "a.1/x"]
    assert sorted(sid for sid, _ in mixture.skipped) == ["a.0/bad", "a.1/bad"]
    with pytest.raises(DataError, match="a.json: sample 'bad'"):
        mix(registries, items).samples()


def test_single(registries):
    source = registries.mixture.get("single").build({"source": {"type": "easy_vqa", "style": "caption", "images_limit": 2}})
    assert [s["id"] for s in source] == ["easy_vqa/train/0/caption", "easy_vqa/train/1/caption"]


def test_fingerprint_follows_config(registries, tmp_path, image_root):
    a = write_json(tmp_path / "a.json", [record(f"a{i}") for i in range(4)])
    fp = lambda **kw: mix(registries, [{"source": src(a, image_root), **kw}]).fingerprint
    assert fp(count=2) == fp(count=2) != fp(count=3)


# --- LLaVA Table 4 arms -----------------------------------------------------------------------


@pytest.fixture
def instruct(tmp_path, image_root):
    """Synthetic LLaVA-Instruct-158K files: 40 conversation, 20 detail, 30 complex reasoning."""
    files = {}
    for field, stem, n in (("conversation", "conversation_58k", 40), ("detail", "detail_23k", 20),
                           ("complex_reasoning", "complex_reasoning_77k", 30)):
        files[field] = str(write_json(tmp_path / f"{stem}.json", [record(f"{i:012d}") for i in range(n)]))
    return {**files, "image_root": str(image_root)}


@pytest.mark.parametrize("arm, expected", [
    ("llava_instruct_full", {"conversation": 40, "detail": 20, "reasoning": 30}),
    ("llava_instruct_detail_complex", {"detail": 20, "reasoning": 30}),
    ("llava_instruct_conv_5d_10c", {"conversation": 40, "detail": 1, "reasoning": 3}),
    ("llava_instruct_conv_only", {"conversation": 40}),
])
def test_table4_arms(registries, instruct, arm, expected):
    samples = registries.mixture.get(arm).build(instruct).samples()
    assert Counter(s["data_type"] for s in samples) == expected
    assert len({s["id"] for s in samples}) == len(samples)  # same COCO ids across files stay apart
    prefixes = {s["id"].split("/")[0] for s in samples}
    assert prefixes <= {"conversation", "detail", "complex_reasoning"}


def test_table4_arm_needs_only_its_files(registries, instruct):
    only_conv = {"conversation": instruct["conversation"], "image_root": instruct["image_root"]}
    assert len(registries.mixture.get("llava_instruct_conv_only").build(only_conv).samples()) == 40
    with pytest.raises(ValidationError, match="needs detail"):
        registries.mixture.get("llava_instruct_full").make_config(only_conv)


def test_table4_missing_file_says_what_to_download(registries, instruct, tmp_path):
    cfg = {**instruct, "detail": str(tmp_path / "nowhere" / "detail_23k.json")}
    with pytest.raises(DataError) as err:
        registries.mixture.get("llava_instruct_detail_complex").build(cfg)
    message = str(err.value)
    assert message.startswith("LLaVA-Instruct-158K:") and "Download detail_23k.json" in message
    assert "stages.<name>.data.detail" in message and "nowhere" in message


def test_mix665k(registries, tmp_path, image_root):
    path = write_json(tmp_path / "llava_v1_5_mix665k.json",
                      [record("1", "a.png"), record("t", None), record("3", "sub/b.png")])
    source = registries.mixture.get("llava_v1_5_mix665k").build({"path": str(path), "image_root": str(image_root)})
    assert [s["id"] for s in source] == ["1", "t", "3"]
    with pytest.raises(DataError, match="download|Download"):
        registries.mixture.get("llava_v1_5_mix665k").build({"path": str(tmp_path / "x.json"), "image_root": "."})
