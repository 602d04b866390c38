import json
import os
import subprocess
import sys
import time

import pytest
import torch
from pydantic import ValidationError

from ablate import zoo
from ablate.components.contracts import VisionEncoder
from ablate.errors import AblateError, MissingCheckpointError
from ablate.registry import registries


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return str(zoo.build("tiny-clip", dest=tmp_path_factory.mktemp("enc") / "tiny-clip"))


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    return str(zoo.build("tiny-siglip", dest=tmp_path_factory.mktemp("enc") / "tiny-siglip"))


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def build(kind, **config):
    return registries().encoder.get(kind).build(config)


def reference_hidden_states(path, pixels):
    from transformers import CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(path).eval()
    with torch.no_grad():
        return model(pixel_values=pixels, output_hidden_states=True).hidden_states


def test_default_is_llava_penultimate_patch_tokens(clip_dir, pixels):
    encoder = build("hf_clip", name_or_path=clip_dir)
    assert isinstance(encoder, VisionEncoder)
    assert (encoder.feature_dim, encoder.num_tokens, encoder.image_size) == (128, 64, 64)
    with torch.no_grad():
        features = encoder(pixels)
    assert features.shape == (2, 64, 128)
    torch.testing.assert_close(features, reference_hidden_states(clip_dir, pixels)[-2][:, 1:], rtol=0, atol=0)


def test_feature_layers_differ_and_concatenate(clip_dir, pixels):
    last = build("hf_clip", name_or_path=clip_dir, feature_layer=-1)
    penultimate = build("hf_clip", name_or_path=clip_dir, feature_layer=-2)
    both = build("hf_clip", name_or_path=clip_dir, feature_layer=[-2, -1])
    with torch.no_grad():
        a, b, ab = last(pixels), penultimate(pixels), both(pixels)
    assert not torch.allclose(a, b)
    assert both.feature_dim == 2 * last.feature_dim == 256
    torch.testing.assert_close(ab, torch.cat([b, a], dim=-1), rtol=0, atol=0)


def test_select_cls_patch_keeps_cls(clip_dir, pixels):
    patch = build("hf_clip", name_or_path=clip_dir)
    with_cls = build("hf_clip", name_or_path=clip_dir, select="cls_patch")
    assert (patch.num_tokens, with_cls.num_tokens) == (64, 65)
    with torch.no_grad():
        full = with_cls(pixels)
        assert full.shape == (2, 65, 128)
        torch.testing.assert_close(full[:, 1:], patch(pixels), rtol=0, atol=0)


def test_frozen_eval_and_dtype(clip_dir, pixels):
    encoder = build("hf_clip", name_or_path=clip_dir, dtype="bfloat16")
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.training and not encoder.model.training
    assert encoder(pixels).dtype == torch.bfloat16


def test_image_processor_matches_checkpoint(clip_dir):
    from PIL import Image

    encoder = build("hf_clip", name_or_path=clip_dir)
    out = encoder.image_processor(images=[Image.new("RGB", (100, 80), "red")], return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 64, 64)


def test_image_processor_is_read_on_the_pil_backend(clip_dir, monkeypatch):
    """LLaVA resizes with PIL (transformers 4's CLIPImageProcessor); transformers 5 would take
    its torchvision backend, whose resize differs, wherever torchvision is installed."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_backends import PilBackend

    asked = []
    original = AutoImageProcessor.from_pretrained.__func__

    def spy(cls, src, **kwargs):
        asked.append(kwargs.get("backend"))
        return original(cls, src, **kwargs)

    monkeypatch.setattr(AutoImageProcessor, "from_pretrained", classmethod(spy))
    encoder = build("hf_clip", name_or_path=clip_dir)
    assert asked == ["pil"]
    assert isinstance(encoder.image_processor, PilBackend)


def test_image_size_mismatch(clip_dir):
    with pytest.raises(AblateError, match=r"image_size 336 does not match .*takes 64x64"):
        build("hf_clip", name_or_path=clip_dir, image_size=336)
    assert build("hf_clip", name_or_path=clip_dir, image_size=64).image_size == 64


def test_feature_layer_out_of_range(clip_dir):
    # 4 layers -> 5 hidden states: -5..4
    with pytest.raises(AblateError, match=r"feature_layer 5 is out of range.*-5\.\.4"):
        build("hf_clip", name_or_path=clip_dir, feature_layer=5)
    with pytest.raises(ValidationError):
        build("hf_clip", name_or_path=clip_dir, feature_layer=[])


def test_cache_key_tracks_config_and_weights(clip_dir, tmp_path):
    key = build("hf_clip", name_or_path=clip_dir).cache_key
    assert build("hf_clip", name_or_path=clip_dir).cache_key == key
    assert build("hf_clip", name_or_path=clip_dir, feature_layer=-1).cache_key != key
    copy = zoo.build("tiny-clip", dest=tmp_path / "copy")
    weights = copy / "model.safetensors"
    before = build("hf_clip", name_or_path=str(copy)).cache_key
    # Content, not stamps: a touched file keeps the key, other weights at the same path change it.
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert build("hf_clip", name_or_path=str(copy)).cache_key == before
    from safetensors.torch import load_file, save_file

    save_file({k: v + 1 for k, v in load_file(str(weights)).items()}, str(weights), metadata={"format": "pt"})
    assert build("hf_clip", name_or_path=str(copy)).cache_key != before


def test_cache_key_tracks_the_image_processors_backend(clip_dir):
    """The PIL and torchvision processors resize to different pixels: features one made are not
    the other's."""
    from ablate.components.encoders.hf_vision import features_key
    from ablate.registry import registries

    config = registries().encoder.get("hf_clip").make_config({"name_or_path": clip_dir})
    pil = build("hf_clip", name_or_path=clip_dir)
    assert pil.cache_key == features_key(config, pil.image_processor)
    assert type(pil.image_processor).__name__ == "CLIPImageProcessorPil"
    other = type("CLIPImageProcessor", (), {})()
    assert features_key(config, other) != pil.cache_key


def test_zoo_name_resolves(pixels):
    encoder = build("hf_clip", name_or_path="zoo:tiny-clip")
    assert encoder.num_tokens == 64 and encoder(pixels).shape == (2, 64, 128)


def test_siglip(siglip_dir, pixels):
    encoder = build("hf_siglip", name_or_path=siglip_dir, feature_layer=[-1, -2])
    assert (encoder.feature_dim, encoder.num_tokens) == (256, 64)
    assert not hasattr(encoder.model, "head")  # unused pooling head is not loaded
    with torch.no_grad():
        assert encoder(pixels).shape == (2, 64, 256)
    with pytest.raises(ValidationError):
        build("hf_siglip", name_or_path=siglip_dir, select="cls_patch")


def test_wrong_family_is_rejected(clip_dir, siglip_dir, tmp_path):
    with pytest.raises(AblateError, match=r"is a 'siglip_vision_model' checkpoint, not CLIP.*type hf_siglip"):
        build("hf_clip", name_or_path=siglip_dir)
    with pytest.raises(AblateError, match=r"is a 'clip_vision_model' checkpoint, not SigLIP.*type hf_clip"):
        build("hf_siglip", name_or_path=clip_dir)
    llama = zoo.build("tiny-llama", dest=tmp_path / "llama")
    with pytest.raises(AblateError, match=r"is a 'llama' checkpoint, not CLIP \(model_type clip or clip_vision_model\)$"):
        build("hf_clip", name_or_path=str(llama))


def test_weights_not_matching_config(clip_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(clip_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["intermediate_size"] = 256  # the saved MLP weights are 512 wide
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingCheckpointError, match="do not have the shapes its config.json gives"):
        build("hf_clip", name_or_path=str(broken))


def test_full_clip_checkpoint_gives_its_vision_tower(tmp_path, pixels):
    from transformers import CLIPConfig, CLIPModel

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=64, patch_size=16)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    full.save_pretrained(tmp_path / "full")
    shutil_copy_processor(tmp_path / "full")
    encoder = build("hf_clip", name_or_path=str(tmp_path / "full"), feature_layer=-1)
    assert (encoder.num_tokens, encoder.feature_dim) == (16, 32)
    with torch.no_grad():
        expected = full.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
        torch.testing.assert_close(encoder(pixels), expected, rtol=0, atol=0)


def shutil_copy_processor(folder):
    from ablate.zoo import _image_processor_class

    _image_processor_class("CLIPImageProcessor")(size={"shortest_edge": 64}).save_pretrained(folder)


@pytest.mark.parametrize("offline", [True, False])
def test_missing_checkpoint_fails_fast(monkeypatch, tmp_path, offline):
    from huggingface_hub import constants

    name = "openai/clip-vit-large-patch14" if offline else "ablate-test/no-such-encoder"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(MissingCheckpointError) as caught:
        build("hf_clip", name_or_path=name)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert message.startswith(f"encoder: cannot load checkpoint '{name}'")
    assert "model.encoder.name_or_path=/path/to/" in message
    assert "Traceback" not in message


def test_missing_local_folder():
    with pytest.raises(MissingCheckpointError, match=r"there is no folder /no/such/clip"):
        build("hf_clip", name_or_path="/no/such/clip")


def test_unknown_zoo_name():
    with pytest.raises(AblateError, match="Did you mean 'tiny-clip'"):
        build("hf_clip", name_or_path="zoo:tiny-clp")


def test_config_modules_import_without_torch():
    code = (
        "import sys, ablate.components.encoders, ablate.components.llms, ablate.zoo, ablate.components.checkpoints;"
        "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_hub_id_loads_from_local_cache(clip_dir, tmp_path, monkeypatch, pixels):
    import shutil

    from huggingface_hub import constants

    # The Hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--ablate-test--tiny-clip"
    shutil.copytree(clip_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    encoder = build("hf_clip", name_or_path="ablate-test/tiny-clip")
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixels), build("hf_clip", name_or_path=clip_dir)(pixels), rtol=0, atol=0)
    assert encoder.cache_key != build("hf_clip", name_or_path=clip_dir).cache_key  # different source folder
    from ablate.components.checkpoints import checkpoint_dir

    assert checkpoint_dir("ablate-test/tiny-clip") == repo / "snapshots" / commit  # its weights are hashed
