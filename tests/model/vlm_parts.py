"""Tiny real components for the model tests: CLIP vision tower, Llama LM, Linear connector."""

from __future__ import annotations

import torch
from torch import nn

ENC_DIM = 8
LLM_DIM = 16
VOCAB = 32


class TinyClipEncoder(nn.Module):
    """A CLIPVisionModel behind the encoder contract (patch features, CLS dropped)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(seed)
        config = CLIPVisionConfig(
            hidden_size=ENC_DIM, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        )
        self.model = CLIPVisionModel(config)
        self.image_processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        self.feature_dim = ENC_DIM
        self.num_tokens = (32 // 8) ** 2
        self.image_size = 32
        self.cache_key = "tiny-clip"

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).last_hidden_state[:, 1:]


class LinearConnector(nn.Linear):
    """One token out per feature in."""

    def __init__(self, in_dim: int, out_dim: int, num_input_tokens: int):
        super().__init__(in_dim, out_dim)
        self.num_output_tokens = num_input_tokens


def tiny_llm(seed: int = 1):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=LLM_DIM, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    # Greedy steps in the tests must not stop early on a random eos.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": 4 + i for i in range(VOCAB - 4)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_vlm(**kwargs):
    from ablate.model.vlm import VisionLanguageModel

    encoder = TinyClipEncoder()
    torch.manual_seed(2)
    connector = LinearConnector(ENC_DIM, LLM_DIM, encoder.num_tokens)
    return VisionLanguageModel(encoder, connector, tiny_llm(), tokenizer=tiny_tokenizer(), **kwargs)
