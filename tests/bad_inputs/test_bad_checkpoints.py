"""Checkpoints that cannot be trusted: a damaged zoo folder, damaged safetensors in a local
folder, and connectors whose output does not fit the splice."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from ablate import zoo
from ablate.errors import AblateError, MissingCheckpointError
from ablate.registry import registries
from bad_input_helpers import assert_rejected, cli, good_recipe, tiny_run, write


@pytest.fixture
def built_clip():
    """tiny-clip in the session's ABLATE_HOME (built once, shared with the other tests)."""
    return zoo.build("tiny-clip")


@pytest.fixture
def home(tmp_path, monkeypatch, built_clip):
    """An ABLATE_HOME whose zoo holds a copy of a built tiny-clip."""
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    shutil.copytree(built_clip, tmp_path / "home" / "zoo" / "tiny-clip")
    return tmp_path / "home" / "zoo" / "tiny-clip"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated-weights": (lambda d: truncate(d / "model.safetensors"), "model.safetensors has"),
    "flipped-byte": (lambda d: (d / "model.safetensors").write_bytes(
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]))((d / "model.safetensors").read_bytes())), "sha256 differs"),
    "config-garbage": (lambda d: (d / "config.json").write_text("{ not json"), "config.json has"),
    "config-deleted": (lambda d: (d / "config.json").unlink(), "config.json is missing"),
    "manifest-garbage": (lambda d: (d / "manifest.json").write_bytes(b"\xff\x00"), "manifest.json is unreadable"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_zoo_folder_is_named_with_the_rebuild_command(home, damage):
    harm, words = DAMAGE[damage]
    harm(home)
    with pytest.raises(AblateError) as info:
        zoo.resolve_checkpoint("zoo:tiny-clip")
    message = str(info.value)
    for word in (str(home), words, "ablate zoo build tiny-clip --force"):
        assert word in message, message


def test_zoo_build_command_reports_a_damaged_folder(home, capsys):
    truncate(home / "model.safetensors")
    assert_rejected(*cli(capsys, "zoo", "build", "tiny-clip"), home, "damaged", "ablate zoo build tiny-clip --force")


def test_zoo_folder_built_before_manifests_is_adopted_then_checked(home):
    (home / "manifest.json").unlink()
    assert zoo.resolve_checkpoint("zoo:tiny-clip") == str(home)
    assert (home / "manifest.json").is_file()
    truncate(home / "model.safetensors")
    with pytest.raises(AblateError, match="damaged"):
        zoo.resolve_checkpoint("zoo:tiny-clip")


def test_run_on_a_damaged_zoo_checkpoint(home, tmp_path, capsys):
    truncate(home / "model.safetensors")
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    tiny_run.prepare_store(tmp_path)
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, "zoo checkpoint 'tiny-clip'", home, "ablate zoo build tiny-clip --force")


@pytest.mark.parametrize("harm", ["truncate", "header", "tiny"])
def test_damaged_safetensors_in_a_local_folder(tmp_path, built_clip, harm):
    folder = shutil.copytree(built_clip, tmp_path / "clip")
    weights = folder / "model.safetensors"
    if harm == "truncate":
        truncate(weights)
    elif harm == "header":
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    else:
        weights.write_bytes(b"hello")
    with pytest.raises(MissingCheckpointError) as info:
        registries().encoder.get("hf_clip").build({"name_or_path": str(folder)})
    assert str(folder) in str(info.value) and "a weights file is damaged" in str(info.value)


# --- connectors whose output does not fit the splice ------------------------------------------


class Shaped(nn.Module):
    """Returns [B, tokens, width] whatever it declares."""

    def __init__(self, declared, tokens, width, meta_ok=True, in_dim=8):
        super().__init__()
        self.proj = nn.Linear(in_dim, width)
        if declared is not None:
            self.num_output_tokens = declared
        self.tokens, self.meta_ok = tokens, meta_ok

    def forward(self, x):
        if not self.meta_ok:
            float(x.sum())  # data-dependent: cannot run on the meta device
        return self.proj(x)[:, : self.tokens] if self.tokens <= x.shape[1] else self.proj(x).repeat(1, 2, 1)


CONNECTORS = {
    "fewer-tokens-than-declared": (Shaped(16, 8, 16), "shape [2, 8, 16]", "num_output_tokens=16"),
    "more-tokens-than-declared": (Shaped(8, 32, 16), "shape [2, 32, 16]", "num_output_tokens=8"),
    "wrong-width": (Shaped(16, 16, 12), "shape [2, 16, 12]", "LLM hidden size=16"),
    "no-declared-count": (Shaped(None, 16, 16), "num_output_tokens=None", "must declare an int"),
    "count-is-a-string": (Shaped("16", 16, 16), "num_output_tokens='16'", "must declare an int"),
}


@pytest.mark.parametrize("case", CONNECTORS)
def test_connector_shape_is_checked_when_the_model_is_built(case):
    from vlm_parts import TinyClipEncoder, tiny_llm

    from ablate.model.vlm import VisionLanguageModel

    connector, *words = CONNECTORS[case]
    with pytest.raises(AblateError) as info:
        VisionLanguageModel(TinyClipEncoder(), connector, tiny_llm())
    for word in ("connector 'Shaped'", *words):
        assert word in str(info.value), str(info.value)


def test_connector_that_cannot_run_on_meta_is_checked_at_the_first_splice():
    from vlm_parts import TinyClipEncoder, tiny_llm

    from ablate.components.contracts import IMAGE_TOKEN_INDEX
    from ablate.model.vlm import VisionLanguageModel

    vlm = VisionLanguageModel(TinyClipEncoder(), Shaped(16, 16, 12, meta_ok=False), tiny_llm())
    ids = torch.tensor([[1, IMAGE_TOKEN_INDEX, 5]])
    with pytest.raises(AblateError, match=r"connector 'Shaped' returned visual tokens of shape \[1, 16, 12\]"):
        vlm.embed_inputs(ids, image_features=torch.zeros(1, 16, 8))


def test_recipe_connector_is_named_by_its_registry_type(tmp_path, capsys):
    """Through build_vlm, the message names the recipe's connector type."""
    from ablate.model.build import build_vlm
    from ablate.recipe import recipe_from_dict

    regs = registries()
    regs.connector.register("liar", builder=lambda config, in_dim, out_dim, num_input_tokens: Shaped(3, 64, out_dim, in_dim=in_dim),
                            plugin="tests")
    try:
        data = {**good_recipe(tmp_path), "model": {**good_recipe(tmp_path)["model"], "connector": "liar"}}
        recipe = recipe_from_dict(data)
        with pytest.raises(AblateError, match=r"connector 'liar' returned visual tokens of shape \[2, 64, 256\]"):
            build_vlm(recipe.model)
        # the same through `ablate run`: exit 2, one message, nothing written
        tiny_run.prepare_store(tmp_path)
        code, out = cli(capsys, "run", write(tmp_path / "recipe.yaml", data))
        assert_rejected(code, out, "connector 'liar'", "shape [2, 64, 256]")
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*/recipe.yaml"))
    finally:
        regs.connector.unregister("liar")


def test_zoo_entry_that_is_a_file(tmp_path, monkeypatch, capsys):
    """A file where the entry's folder goes is named before anything is built (rmtree failed on it)."""
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    entry = write(tmp_path / "home" / "zoo" / "tiny-clip", "not a folder")
    assert_rejected(*cli(capsys, "zoo", "build", "tiny-clip"), entry, "not a folder", "delete it")
    assert entry.read_text() == "not a folder" and not list(entry.parent.glob(".tiny-clip.*/"))
