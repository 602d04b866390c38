"""VisionLanguageModel: one nn.Module holding encoder -> connector -> LLM.

Each IMAGE_TOKEN_INDEX placeholder in `input_ids` is replaced by the connector's visual tokens
for that image (as many as the connector emits), then the LLM runs on `inputs_embeds`.

Splice conventions (same as LLaVA's `prepare_inputs_labels_for_multimodal`):
- images are matched to placeholders in row-major order (sample 0's images first, each sample's
  in order of appearance); samples without images contribute none;
- labels at visual positions are IGNORE_INDEX; prompt positions arrive already masked;
- sequences are truncated to `max_length` AFTER the visual tokens are inserted;
- the result is right padded for training and left padded for generation. Padding positions get
  zero embeddings, attention mask 0 and label IGNORE_INDEX: they are never attended to nor
  scored, so their content does not matter, and zeros need no pad token.

Padding already present in `input_ids` (either side) is recognised by `attention_mask` and
dropped before re-padding, so the pad id in `input_ids` is never embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from ablate.errors import AblateError, DataError
from ablate.model.loss import causal_lm_loss
from ablate.model.packing import Rows, mask_sample_starts, one_row_per_batch, pack_rows, packed_position_ids

COMPONENTS = ("encoder", "connector", "llm")


class VisionLanguageModel(nn.Module):
    # What transformers' Trainer looks up on a model that is not a PreTrainedModel.
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _keys_to_ignore_on_save = None
    # forward passes `num_items_in_batch` (and other loss kwargs) through to the LLM's loss, so
    # gradient accumulation averages over tokens, not over micro-batches.
    accepts_loss_kwargs = True
    # Trainer counts label tokens as labels[..., 1:] only for shifting causal-LM losses.
    loss_type = "ForCausalLM"

    def __init__(
        self,
        encoder: nn.Module,
        connector: nn.Module,
        llm: nn.Module,
        *,
        max_length: int | None = None,
        tokenizer: Any = None,
        image_processor: Any = None,
        component_configs: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.connector = connector
        self.llm = llm
        # Truncation length after visual tokens are inserted; None = no truncation. Set per stage.
        self.max_length = max_length
        # Per stage too (ablate.train.stage): padding-free training batches, and how the loss is
        # computed (loss_mode "plain" | "chunked" | "fused", ablate.model.loss).
        self.packing = False
        self.loss_mode = "plain"
        self.tokens_processed = 0  # running count of LLM tokens seen in training forwards
        self.tokenizer = tokenizer
        self.image_processor = image_processor if image_processor is not None else getattr(encoder, "image_processor", None)
        # The validated recipe blocks the components were built from (for logging/saving).
        self.component_configs = dict(component_configs or {})
        # Components kept in eval mode by `train()` (frozen encoder/connector: no dropout noise).
        self.keep_eval: set[str] = set()
        # peft tuners of components that carry LoRA adapters, for merging (see trainable.py).
        self.lora_tuners: dict[str, Any] = {}
        self._dry_run_connector()

    # --- attributes Trainer and generation code read ------------------------------------------

    @property
    def config(self):
        """The LLM's config (Trainer sets `use_cache` and aligns special tokens on it)."""
        return self.llm.config

    @property
    def generation_config(self):
        return getattr(self.llm, "generation_config", None)

    @property
    def _no_split_modules(self) -> list[str]:
        names: list[str] = []
        for component in (self.encoder, self.connector, self.llm):
            for module in _outer_pretrained(component):
                for name in getattr(module, "_no_split_modules", None) or []:
                    if name not in names:
                        names.append(name)
        return names

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def pad_token_id(self) -> int | None:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None and self.generation_config is not None:
            pad = self.generation_config.pad_token_id
        return pad

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.keep_eval:
            getattr(self, name).eval()
        return self

    # --- parameters ---------------------------------------------------------------------------

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Like PreTrainedModel.num_parameters (Trainer uses it for FLOP estimates)."""
        skip: set[int] = set()
        if exclude_embeddings:
            skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(
            p.numel() for p in self.parameters()
            if id(p) not in skip and (p.requires_grad or not only_trainable)
        )

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """{"encoder"|"connector"|"llm"|"all": {"total": n, "trainable": n}} (LoRA params included)."""
        counts = {}
        for name in (*COMPONENTS, "all"):
            module = self if name == "all" else getattr(self, name)
            params = list(module.parameters())  # deduplicates tied weights
            counts[name] = {
                "total": sum(p.numel() for p in params),
                "trainable": sum(p.numel() for p in params if p.requires_grad),
            }
        return counts

    def _trainable(self, module: nn.Module) -> bool:
        return any(p.requires_grad for p in module.parameters())

    # --- gradient checkpointing ---------------------------------------------------------------

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """Checkpoint the LLM's layers, and the encoder's when it trains (a frozen one runs without grad)."""
        kwargs = activation_checkpointing_kwargs or {"use_reentrant": False}
        targets = [self.llm] + (_outer_pretrained(self.encoder) if self._trainable(self.encoder) else [])
        for model in targets:
            model.activation_checkpointing_enable(
                activation_checkpointing_kwargs=kwargs, every_n_layers=every_n_layers, offload=offload
            )

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs) -> None:
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def activation_checkpointing_disable(self) -> None:
        for model in [self.llm, *_outer_pretrained(self.encoder)]:
            if getattr(model, "is_activation_checkpointing", False):
                model.activation_checkpointing_disable()

    gradient_checkpointing_disable = activation_checkpointing_disable

    @property
    def is_activation_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) is True for m in self.modules())

    # --- images -> visual tokens --------------------------------------------------------------

    def encode_images(
        self, pixel_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Visual tokens [K, T, D_llm] for K images, from pixels or from precomputed encoder features."""
        if pixel_values is not None and image_features is not None:
            raise ValueError("pass pixel_values or image_features, not both")
        if image_features is None:
            if pixel_values is None or pixel_values.shape[0] == 0:
                return None
            # A frozen encoder runs without autograd, like LLaVA's vision tower: saves its activations.
            # When the pixels need no gradient, autograd records nothing for a frozen encoder anyway,
            # so the walk over its parameters (~1 ms a step for a 24-layer tower) is only needed
            # when they do.
            needs_graph = not pixel_values.requires_grad or self._trainable(self.encoder)
            with torch.set_grad_enabled(torch.is_grad_enabled() and needs_graph):
                image_features = self.encoder(pixel_values.to(_float_dtype(self.encoder, pixel_values.dtype)))
            self.check_encoder_features(image_features, pixel_values.shape[0], pixel_values.device)
        elif image_features.shape[0] == 0:
            return None
        visual = self.connector(image_features.to(_float_dtype(self.connector, image_features.dtype)))
        if not isinstance(visual, torch.Tensor):
            self._wrong_visual_tokens(f"a {type(visual).__name__}, not a tensor", image_features.shape[0])
        # num_output_tokens is declared for the encoder's token count (tests may feed fewer).
        full = image_features.shape[1] == getattr(self.encoder, "num_tokens", None)
        self.check_visual_tokens(tuple(visual.shape), image_features.shape[0], count=full)
        return visual

    def check_encoder_features(self, features: Any, images: int, device: torch.device) -> None:
        """A plugin encoder's output that breaks the contract is named here, not by a shape or
        device error inside the connector."""
        from ablate.components.contracts import encoder_features_problem

        if problem := encoder_features_problem(features, self.encoder, images, device):
            raise AblateError(f"{self.component_label('encoder')} {problem} "
                              "(see ablate.components.contracts for what an encoder returns)")

    def component_label(self, name: str) -> str:
        """How errors name a component: its registry entry (`encoder 'x' (plugin p)`), else its class."""
        from ablate.registry import registries

        kind = getattr(self.component_configs.get(name), "type", None)
        if isinstance(kind, str) and kind in registries()[name]:
            return registries()[name].get(kind).label
        return f"{name} {type(getattr(self, name)).__name__}"

    def check_visual_tokens(self, shape: tuple[int, ...], images: int, count: bool = True) -> None:
        """The connector's output must be [images, its num_output_tokens, the LLM's hidden size]:
        one clear error naming the connector here, instead of a shape error deep in the splice."""
        declared = getattr(self.connector, "num_output_tokens", None)
        width = self.llm.get_input_embeddings().embedding_dim
        if isinstance(declared, int) and len(shape) == 3 and shape[0] == images and shape[2] == width \
                and (shape[1] == declared or not count):
            return
        self._wrong_visual_tokens(f"visual tokens of shape {list(shape)}", images)

    def _wrong_visual_tokens(self, what: str, images: int) -> None:
        declared = getattr(self.connector, "num_output_tokens", None)
        width = self.llm.get_input_embeddings().embedding_dim
        name = getattr(self.component_configs.get("connector"), "type", None) or type(self.connector).__name__
        raise AblateError(
            f"connector {name!r} returned {what}, but the splice needs "
            f"[images={images}, num_output_tokens={declared!r}, LLM hidden size={width}]; the connector "
            "must declare an int num_output_tokens and emit [batch, num_output_tokens, out_dim] "
            "(ablate.testing.check_connector checks a plugin connector)"
        )

    def _dry_run_connector(self) -> None:
        """Check the connector's output shape on the meta device (no memory, no compute) at build
        time, when the encoder says what it feeds it."""
        tokens, dim = getattr(self.encoder, "num_tokens", None), getattr(self.encoder, "feature_dim", None)
        if not (isinstance(tokens, int) and isinstance(dim, int)):
            return
        meta = {name: torch.empty_like(t, device="meta") for name, t in self.connector.state_dict(keep_vars=True).items()}
        try:
            with torch.no_grad():
                features = torch.zeros(2, tokens, dim, device="meta", dtype=_float_dtype(self.connector, torch.float32))
                out = torch.func.functional_call(self.connector, meta, (features,))
        except Exception:  # noqa: BLE001 - some modules cannot run on meta; the first real splice checks them
            return
        if not isinstance(out, torch.Tensor):
            self._wrong_visual_tokens(f"a {type(out).__name__}, not a tensor", 2)
        self.check_visual_tokens(tuple(out.shape), 2)

    # --- the splice ---------------------------------------------------------------------------

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        *,
        padding_side: str = "right",
        max_length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Replace image placeholders by visual tokens: (inputs_embeds, attention_mask, labels).

        Vectorised over the whole batch: every token's destination index is computed with
        cumulative sums, then text embeddings and visual tokens are scattered into place.
        `max_length` defaults to `self.max_length`.
        """
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        embeds, layout, new_labels = self._splice(
            input_ids, attention_mask, labels, pixel_values, image_features, padding_side, max_length
        )
        positions = torch.arange(layout.width, device=input_ids.device)[None, :]
        if padding_side == "right":
            new_mask = positions < layout.new_len[:, None]
        else:
            new_mask = positions >= layout.offset[:, None]
        new_mask = new_mask.to(attention_mask.dtype if attention_mask is not None else torch.long)
        return embeds, new_mask, new_labels

    def embed_packed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The splice without padding (ablate.model.packing): (inputs_embeds, position_ids, labels),
        the samples end to end in rows, positions restarting at each one. Each sample's first label
        is IGNORE_INDEX, so no sample's first token is predicted from the one before it (unpacked,
        a row's first label is never scored either)."""
        return self._packed(input_ids, attention_mask, labels, pixel_values, image_features)[:3]

    def _packed(self, input_ids, attention_mask, labels, pixel_values, image_features):
        """embed_packed's result and the number of LLM tokens (text + visual) in the rows."""
        embeds, layout, new_labels = self._splice(
            input_ids, attention_mask, labels, pixel_values, image_features, "packed", None
        )
        rows = Rows(layout.row, layout.offset, layout.rows, layout.width)
        position_ids = packed_position_ids(rows, layout.new_len)
        if new_labels is not None:
            mask_sample_starts(new_labels, rows, layout.new_len)
        return embeds, position_ids, new_labels, int(layout.new_len.sum())

    def spliced_labels(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor
    ) -> torch.Tensor:
        """The labels the LLM sees after the splice and its truncation, right padded, without
        encoding any image: what the scored-token count of a batch must be taken from."""
        real, is_image = self._placeholders(input_ids, attention_mask)
        per_image = getattr(self.connector, "num_output_tokens", 1)
        layout = _splice_layout(real, is_image, per_image, self.max_length, "right")
        rows, cols, dest = _kept_text(real, is_image, layout)
        return _placed_labels(labels, rows, cols, dest, layout)

    def _placeholders(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """(real tokens, image placeholders) masks of `input_ids`."""
        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        return real, (input_ids == IMAGE_TOKEN_INDEX) & real

    def _splice(self, input_ids, attention_mask, labels, pixel_values, image_features, padding_side, max_length):
        """(embeddings laid out as `padding_side` says, the layout, labels in the same layout)."""
        max_length = self.max_length if max_length is None else max_length
        real, is_image = self._placeholders(input_ids, attention_mask)
        visual = self.encode_images(pixel_values, image_features)
        _check_image_count(is_image, visual)
        layout = _splice_layout(real, is_image, visual.shape[1] if visual is not None else 1, max_length, padding_side,
                                one_row=padding_side == "packed" and one_row_per_batch(self.llm.config))

        embed_tokens = self.llm.get_input_embeddings()
        rows, cols, dest_text = _kept_text(real, is_image, layout)
        text_embeds = embed_tokens(input_ids[rows, cols])
        # Written in place: the buffer is fresh, so this spares a copy of it per index_put, and
        # autograd still routes each slot's gradient to the tensor written there.
        embeds = text_embeds.new_zeros(layout.rows, layout.width, text_embeds.shape[-1])
        embeds.index_put_((layout.row[rows], dest_text), text_embeds)
        if visual is not None:
            _scatter_visual(embeds, visual, is_image, layout)
        new_labels = None if labels is None else _placed_labels(labels, rows, cols, dest_text, layout)
        return embeds, layout, new_labels

    # --- forward / generate -------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **kwargs,
    ):
        """Returns the LLM's CausalLMOutputWithPast; kwargs (e.g. num_items_in_batch) go to the LLM.

        In training with `packing` on, the LLM runs on padding-free rows (`embed_packed`); with
        labels and a `loss_mode` other than "plain", the loss comes from its hidden states without
        full-vocabulary logits (ablate.model.loss; the output then has no logits)."""
        if self.packing and self.training:
            embeds, position_ids, labels, tokens = self._packed(input_ids, attention_mask, labels, pixel_values,
                                                                image_features)
            inputs = {"inputs_embeds": embeds, "attention_mask": None, "position_ids": position_ids,
                      "use_cache": False}
        else:
            embeds, mask, labels = self.embed_inputs(input_ids, attention_mask, labels, pixel_values, image_features)
            inputs = {"inputs_embeds": embeds, "attention_mask": mask}
            tokens = int(mask.sum())
        if self.training:  # LLM positions (text + visual) for throughput figures
            self.tokens_processed += tokens
        if labels is not None and self.loss_mode != "plain":
            return causal_lm_loss(self.llm, inputs, labels, self.loss_mode, **kwargs)
        return self.llm(**inputs, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        max_new_tokens: int = 16,
        **kwargs,
    ) -> torch.Tensor:
        """Greedy (by default) generation; returns only the new tokens [B, <= max_new_tokens].

        Prompts are re-padded on the left after the splice, so any padding of `input_ids` works;
        kwargs go to the LLM's `generate` (do_sample, num_beams, eos_token_id, stop_strings with
        tokenizer, ...). Rows that end (EOS, a stop string) are padded until all have. The LLM
        keeps the prompt's keys and values and is fed one new token a step: transformers' generate
        always caches for a decoder fed `inputs_embeds`, whatever its configs say about use_cache.

        The leading tokens that every row shares (a template's system prompt) run through the LLM
        once, not once per row: their keys and values start the cache of every row (see
        `_with_shared_prefix`).
        """
        embeds, mask, _ = self.embed_inputs(
            input_ids, attention_mask, None, pixel_values, image_features, padding_side="left"
        )
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("num_beams", 1)
        # Each rank generates for its own share of an evaluation, never in step with the others
        # (under ZeRO-3 the weights are gathered whole first): transformers would otherwise sync
        # every decoding step across ranks while a ZeRO-3 stage is set up.
        kwargs.setdefault("synced_gpus", False)
        if kwargs.get("pad_token_id") is None and self.pad_token_id is not None:
            kwargs["pad_token_id"] = self.pad_token_id
        one_per_row = kwargs["num_beams"] == 1 and kwargs.get("num_return_sequences", 1) == 1
        if one_per_row and not {"cache", "past_key_values"} & kwargs.keys():
            real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
            shared = min(_shared_prefix(input_ids, real), int(mask.sum(1).min()) - 1)
            if shared > 0 and input_ids.shape[0] > 1:
                embeds, mask, cache = self._with_shared_prefix(embeds, mask, shared)
                kwargs[_cache_argument(self.llm)] = cache
        # With only inputs_embeds (no input_ids), a decoder-only generate returns just the new tokens.
        return self.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, **kwargs)

    def _with_shared_prefix(self, embeds: torch.Tensor, mask: torch.Tensor, shared: int):
        """(embeds, mask, cache) for left-padded rows whose first `shared` tokens are the same.

        The prefix runs once, for one row, and its cache is repeated for every row. Each row is
        laid out as prefix, padding, rest: transformers' generate feeds the LLM only what follows
        the cached prefix, and numbers positions by the attention mask, so every row's tokens
        keep the positions they had.
        """
        from transformers import DynamicCache

        rows, width, _ = embeds.shape
        padding = (mask == 0).sum(1)
        cache = DynamicCache(config=self.llm.config)
        start = int(padding[0])
        head = {"logits_to_keep": 1} if forward_accepts(self.llm, "logits_to_keep") else {}
        self.llm(inputs_embeds=embeds[:1, start : start + shared], use_cache=True, **head,
                 **{_cache_argument(self.llm): cache})
        cache.batch_repeat_interleave(rows)
        pos = torch.arange(width, device=embeds.device)[None, :]
        source = torch.where(pos < shared, padding[:, None] + pos,
                             torch.where(pos < shared + padding[:, None], pos - shared, pos))
        return embeds.gather(1, source[..., None].expand_as(embeds)), mask.gather(1, source), cache


def _shared_prefix(input_ids: torch.Tensor, real: torch.Tensor) -> int:
    """How many leading real tokens all rows have in common, up to the first image placeholder
    (each image's visual tokens are its own)."""
    width = int(real.sum(1).min())
    leading = input_ids.gather(1, torch.argsort((~real).int(), dim=1, stable=True)[:, :width])
    same = (leading == leading[:1]).all(0) & (leading[0] != IMAGE_TOKEN_INDEX)
    return int(same.int().cumprod(0).sum())


def forward_accepts(llm: nn.Module, name: str) -> bool:
    """Whether the LLM's forward (the model's under a peft wrapper) takes the keyword `name`."""
    import inspect

    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    return name in inspect.signature(base.forward).parameters


def _cache_argument(llm: nn.Module) -> str:
    """The name the LLM's forward takes its KV cache by (`cache` since transformers 5.2x)."""
    return "cache" if forward_accepts(llm, "cache") else "past_key_values"


@dataclass
class _Layout:
    """Where each real token goes after the splice."""

    dest: torch.Tensor  # [B, L] destination of each input position within its sample
    new_len: torch.Tensor  # [B] length of each spliced sample (after truncation)
    width: int  # length of the output rows
    offset: torch.Tensor  # [B] where each sample starts in its row (left padding, or its place in a packed row)
    row: torch.Tensor  # [B] the output row of each sample (itself, unless packed)
    rows: int  # number of output rows


def _splice_layout(real, is_image, per_image: int, max_length: int | None, padding_side: str,
                   one_row: bool = False) -> _Layout:
    """padding_side "right" or "left": one row per sample, padded to the longest; "packed": the
    samples end to end in rows (ablate.model.packing; `one_row` for flash-attention)."""
    # Destination of each real token: its rank among the sample's real tokens, plus the extra
    # (per_image - 1) slots taken by every image placeholder before it.
    extra = is_image.long() * (per_image - 1)
    dest = real.long().cumsum(1) - 1 + extra.cumsum(1) - extra
    new_len = real.sum(1) + extra.sum(1)
    if max_length is not None:
        new_len = new_len.clamp(max=max_length)
    if padding_side == "packed":
        rows = pack_rows(new_len, one_row)
        return _Layout(dest, new_len, rows.width, rows.start, rows.row, rows.rows)
    width = int(new_len.max()) if real.shape[0] else 0
    offset = (width - new_len) if padding_side == "left" else torch.zeros_like(new_len)
    return _Layout(dest, new_len, width, offset, torch.arange(real.shape[0], device=real.device), real.shape[0])


def _kept_text(real, is_image, layout: _Layout):
    """(sample, input position, destination in its row) of every text token the truncation keeps."""
    keep_text = real & ~is_image & (layout.dest < layout.new_len[:, None])
    rows, cols = keep_text.nonzero(as_tuple=True)
    return rows, cols, layout.dest[rows, cols] + layout.offset[rows]


def _placed_labels(labels: torch.Tensor, rows, cols, dest, layout: _Layout) -> torch.Tensor:
    """Labels in the output layout: the text tokens' own, IGNORE_INDEX at visual and padding positions."""
    placed = torch.full((layout.rows, layout.width), IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
    placed[layout.row[rows], dest] = labels[rows, cols]
    return placed


def _scatter_visual(embeds: torch.Tensor, visual: torch.Tensor, is_image: torch.Tensor, layout: _Layout) -> None:
    per_image = visual.shape[1]
    img_rows, img_cols = is_image.nonzero(as_tuple=True)  # row-major = order of appearance
    vis_dest = layout.dest[img_rows, img_cols][:, None] + torch.arange(per_image, device=embeds.device)
    keep_vis = vis_dest < layout.new_len[img_rows][:, None]
    vis_rows = layout.row[img_rows][:, None].expand_as(vis_dest)[keep_vis]
    vis_dest = (vis_dest + layout.offset[img_rows][:, None])[keep_vis]
    embeds.index_put_((vis_rows, vis_dest), visual[keep_vis].to(embeds.dtype))


def _check_image_count(is_image: torch.Tensor, visual: torch.Tensor | None) -> None:
    n_placeholders = int(is_image.sum())
    n_images = 0 if visual is None else visual.shape[0]
    if n_images != n_placeholders:
        raise DataError(
            f"the batch has {n_placeholders} image placeholder(s) in input_ids but {n_images} image(s); "
            "every sample with an image needs exactly one <image> token per image"
        )


def _float_dtype(module: nn.Module, default: torch.dtype) -> torch.dtype:
    """The dtype of a module's floating-point weights (inputs are cast to it)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), default)


def _outer_pretrained(module: nn.Module) -> list[nn.Module]:
    """The outermost transformers PreTrainedModels inside `module` (itself included)."""
    from transformers import PreTrainedModel

    found: list[tuple[str, nn.Module]] = []
    for name, sub in module.named_modules():
        if isinstance(sub, PreTrainedModel) and not any(
            name == p or name.startswith(p + ".") or p == "" for p, _ in found
        ):
            found.append((name, sub))
    return [m for _, m in found]
