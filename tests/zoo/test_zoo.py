import json
import multiprocessing

import pytest
import torch

from ablate import zoo
from ablate.errors import AblateError


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-siglip", "tiny-llama"])
def test_build_twice_gives_identical_files(tmp_path, name):
    a = zoo.build(name, dest=tmp_path / "a")
    b = zoo.build(name, dest=tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert json.loads((a / zoo.SPEC_FILE).read_text())["name"] == name


def test_clip_from_pretrained_round_trip(tmp_path):
    from transformers import AutoImageProcessor, CLIPVisionConfig, CLIPVisionModel

    path = zoo.build("tiny-clip", dest=tmp_path / "clip")
    torch.manual_seed(zoo.ZOO["tiny-clip"].seed)
    fresh = CLIPVisionModel(CLIPVisionConfig(**zoo.TINY_CLIP)).eval()
    loaded = CLIPVisionModel.from_pretrained(path).eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).last_hidden_state, fresh(pixels).last_hidden_state)
    assert loaded(pixels).last_hidden_state.shape == (2, 65, zoo.TINY_CLIP["hidden_size"])
    processor = AutoImageProcessor.from_pretrained(path)
    from PIL import Image

    out = processor(images=Image.new("RGB", (64, 64), "red"), return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 64, 64)


def test_llama_from_pretrained_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo.build("tiny-llama", dest=tmp_path / "llama")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.tie_word_embeddings is False
    assert model.config.hidden_size == zoo.TINY_LLAMA["hidden_size"]
    ids = tokenizer(["what is the blue shape?"], return_tensors="pt").input_ids
    resaved = tmp_path / "resaved"
    model.save_pretrained(resaved)
    again = AutoModelForCausalLM.from_pretrained(resaved).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_large_llama_is_bigger():
    small = _params(zoo.TINY_LLAMA)
    large = _params(zoo.TINY_LLAMA_LARGE)
    assert 2.0 <= large / small <= 3.0


def test_a_vocabulary_other_than_the_default_is_part_of_the_fingerprint_and_the_shapes():
    wider = zoo.get_spec("tiny-llama-easyvqa-sqa")
    assert wider.fingerprint()["vocabulary"] == "easyvqa+scienceqa"
    # the default stays out of the fingerprint, so entries built before the field existed stay built
    assert all("vocabulary" not in zoo.get_spec(name).fingerprint()
               for name in zoo.ZOO if zoo.get_spec(name).vocabulary == "easyvqa")
    assert zoo.spec_config("tiny-llama-easyvqa-sqa").vocab_size == 1536
    assert zoo.spec_config("tiny-llama-easyvqa").vocab_size == 1169


def _params(cfg, vocab=1200):
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return n * (4 * h * h + 3 * h * i) + 2 * vocab * h


def test_resolve_builds_once_into_home(home):
    path = zoo.resolve_checkpoint("zoo:tiny-clip")
    assert path == str(home / "zoo" / "tiny-clip")
    mtime = (home / "zoo" / "tiny-clip" / "model.safetensors").stat().st_mtime_ns
    assert zoo.resolve_checkpoint("zoo:tiny-clip") == path
    assert (home / "zoo" / "tiny-clip" / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p for p in (home / "zoo").iterdir() if p.is_dir() and p.name.startswith(".")]  # no temp left


def test_resolve_rebuilds_when_spec_changes(home, monkeypatch):
    zoo.resolve_checkpoint("zoo:tiny-clip")
    changed = zoo.ZooSpec("tiny-clip", "clip", {**zoo.TINY_CLIP, "num_hidden_layers": 1}, seed=1)
    monkeypatch.setitem(zoo.ZOO, "tiny-clip", changed)
    path = zoo.resolve_checkpoint("zoo:tiny-clip")
    assert json.loads((home / "zoo" / "tiny-clip" / "config.json").read_text())["num_hidden_layers"] == 1
    assert zoo.is_built("tiny-clip", path)


def test_resolve_passes_other_names_through():
    assert zoo.resolve_checkpoint("openai/clip-vit-large-patch14") == "openai/clip-vit-large-patch14"
    assert zoo.resolve_checkpoint("/no/such/dir") == "/no/such/dir"


def test_unknown_zoo_name():
    with pytest.raises(AblateError, match=r"unknown zoo model 'tiny-lama'.*Did you mean 'tiny-llama'"):
        zoo.resolve_checkpoint("zoo:tiny-lama")


def _build_in_child(dest, queue):
    queue.put(str(zoo.build("tiny-clip", dest=dest)))


def test_concurrent_builds_do_not_clash(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    dest = tmp_path / "shared" / "tiny-clip"
    procs = [ctx.Process(target=_build_in_child, args=(dest, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert {queue.get(), queue.get()} == {str(dest)}
    assert zoo.is_built("tiny-clip", dest)


def test_a_build_leaves_the_callers_random_generators_as_they_were(tmp_path):
    """The build seeds torch, `random` and numpy for its weights; the caller's next draws are those
    it would have made without the build."""
    import random

    import numpy as np
    import torch

    def draws():
        return torch.rand(3).tolist(), random.random(), float(np.random.rand())

    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    expected = draws()
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    zoo.build("tiny-clip", dest=tmp_path / "clip")
    assert draws() == expected
