"""transformers' Trainer, adapted to a multi-component VLM.

Five changes, and a sixth for stored state: the connector can have its own learning rate (LLaVA's mm_projector_lr),
checkpoints hold just the trainable weights (like LLaVA's mm_projector.bin in stage 1), which
the Trainer's non-strict load restores on resume, the training batches can be grouped by
modality as LLaVA-1.5's are (ablate.train.sampler), the loss's token count is taken on the
labels after the splice, and the samples the collator left out are counted (`skipped_samples`).
Each checkpoint also gets a manifest of its files, checked before a stage resumes from it.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import Trainer


class VLMTrainer(Trainer):
    def __init__(self, *args, connector_lr: float | None = None, group_by_modality_length: bool = False, **kwargs):
        self.connector_lr = connector_lr
        self.group_by_modality_length = group_by_modality_length
        super().__init__(*args, **kwargs)
        from ablate.train.callbacks import SkippedSamplesCallback

        self.skipped_samples = SkippedSamplesCallback()
        self.add_callback(self.skipped_samples)

    def training_step(self, model, inputs, num_items_in_batch=None):
        from ablate.data.collate import SKIPPED_IDS

        self.skipped_samples.add(inputs.pop(SKIPPED_IDS, []))  # not a model input
        return super().training_step(model, inputs, num_items_in_batch)

    def _save_checkpoint(self, model, trial) -> None:
        self.skipped_samples.gather()  # rank 0 writes the trainer state: it needs every rank's ids
        super()._save_checkpoint(model, trial)
        self._write_checkpoint_manifest(trial)

    def _write_checkpoint_manifest(self, trial) -> None:
        """Every file of the checkpoint by size and sha256 (`ablate.manifest`), so a resume never
        loads weights or optimizer state whose bytes changed on disk (`check_checkpoint`)."""
        from accelerate.utils import gather_object
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        from ablate.manifest import file_digests, manifest_files, write_manifest

        self.accelerator.wait_for_everyone()  # every rank's shards are written before any is read
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        # Each rank hashes every N-th file: a ZeRO-3 checkpoint of a 13B model is ~200 GB of shards,
        # minutes of sha256 for one process, and the other ranks would wait on it anyway.
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        digests = file_digests(folder, manifest_files(folder)[rank::world])
        merged = {k: v for part in (gather_object([digests]) if world > 1 else [digests]) for k, v in part.items()}
        if self.args.should_save:
            write_manifest(folder, merged)

    def _get_train_sampler(self, train_dataset=None):
        """LLaVA's modality-length-grouped order when asked for; otherwise the Trainer's sampler.

        As LLaVA does, a megabatch is one optimizer step: the per-device batch x ranks x
        accumulation steps. The DataLoader's batches are then dealt to the ranks by accelerate.
        """
        if not self.group_by_modality_length:
            return super()._get_train_sampler(train_dataset)
        from ablate.data.pipeline import modality_lengths
        from ablate.train.sampler import ModalityLengthGroupedSampler

        lengths, has_image = modality_lengths(self.train_dataset if train_dataset is None else train_dataset)
        args = self.args
        return ModalityLengthGroupedSampler(
            lengths, has_image, batch_size=args.train_batch_size,
            world_size=max(args.world_size, 1) * args.gradient_accumulation_steps,
            seed=args.data_seed if args.data_seed is not None else args.seed,
        )

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """The Trainer's count of scored label tokens, taken on the labels the LLM sees.

        The batch's `labels` are the collator's, before the splice: truncating a sample at
        max_length after its visual tokens are inserted drops labels they still count. Given
        `shift_labels` (the padding-free collators' convention), the Trainer counts those instead,
        then sums the counts across ranks as usual."""
        model = self.accelerator.unwrap_model(self.model)
        if not hasattr(model, "spliced_labels"):
            return super()._get_num_items_in_batch(batch_samples, device)
        as_seen = [{**batch, "shift_labels": _shifted(model.spliced_labels(
            batch["input_ids"], batch.get("attention_mask"), batch["labels"]))} if "labels" in batch else batch
            for batch in batch_samples]
        return super()._get_num_items_in_batch(as_seen, device)

    def create_optimizer(self, model=None):
        if self.optimizer is not None or self.connector_lr is None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name in decay, _is_connector(name)), []).append(param)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if has_decay else 0.0,
                **({"lr": self.connector_lr} if is_connector else {}),
            }
            for (has_decay, is_connector), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if state_dict is None:
            state_dict = trainable_state_dict(model)
        elif state_dict:  # DeepSpeed gathered the full state dict: keep the trainable part
            trainable = {n for n, p in model.named_parameters() if p.requires_grad}
            state_dict = {k: v for k, v in state_dict.items() if k in trainable}
        super()._save(output_dir, state_dict=state_dict)

    def _issue_warnings_after_load(self, load_result) -> None:
        """Checkpoints hold only the trainable weights, so frozen ones are "missing" by design;
        a missing trainable weight or an unexpected one means the checkpoint is not this stage's."""
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        missing = [k for k in load_result.missing_keys if k in trainable]
        check_checkpoint_fits(missing, load_result.unexpected_keys)


def check_checkpoint_fits(missing: list[str], unexpected: list[str], where: str = "the checkpoint") -> None:
    if missing or unexpected:
        from ablate.errors import AblateError

        parts = [f"missing trainable weights {missing[:5]}" if missing else "",
                 f"unexpected weights {unexpected[:5]}" if unexpected else ""]
        raise AblateError(f"{where} does not fit this stage's model: " + "; ".join(p for p in parts if p)
                          + ". Delete the stage's checkpoints folder to train it from the start.")


def load_checkpoint_weights(model: torch.nn.Module, checkpoint) -> None:
    """Load a VLMTrainer checkpoint (trainable weights only) into `model`."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(checkpoint) / "model.safetensors"
    result = model.load_state_dict(load_file(str(path)), strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    check_checkpoint_fits([k for k in result.missing_keys if k in trainable], result.unexpected_keys, str(path))


def release_deepspeed(trainer) -> None:
    """After a DeepSpeed stage, make the model a plain module again on every rank.

    ZeRO-3 leaves each rank with a slice of every weight: gather them whole (a collective, so
    all ranks call this) into fresh Parameters, one parameter at a time, so a rank never holds
    the gathered model and its copy at once (peak: the whole model plus one parameter, not two
    models). Then remove the engine's hooks, or the next stage's backward would also run this
    stage's gradient reduction. Afterwards every rank holds the stage's weights, as the next
    stage's engine and the sharded evaluation need.
    """
    engine = getattr(trainer, "deepspeed", None)
    if not trainer.is_deepspeed_enabled or engine is None:
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    whole = _gather_one_by_one([p for p in model.parameters() if hasattr(p, "ds_id")])
    engine.destroy()
    fresh: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None and id(param) in whole:
                if id(param) not in fresh:  # tied weights stay tied
                    fresh[id(param)] = torch.nn.Parameter(whole[id(param)], requires_grad=param.requires_grad)
                module._parameters[name] = fresh[id(param)]
    # transformers' global "ZeRO-3 is on" flag would make generate() wait for the other ranks.
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


@contextmanager
def whole_weights(trainer):
    """Inside: the model whole on every rank, as plain modules, for an evaluation in the middle of
    a stage (after an epoch).

    ZeRO-3 gathers each layer's weights in hooks around its forward: collectives every rank must
    join, in the same order. A sharded evaluation runs different forwards on each rank (its own
    items and answer lengths), so with the hooks on, the ranks would deadlock (gloo reports a
    collective mismatch). DeepSpeed has no public switch for the hooks; TRL's remove_hooks and
    add_hooks, which it keeps in step with DeepSpeed for generating during training, take them off
    while GatheredParameters holds every weight whole (memory for the whole model on each rank,
    for the evaluation's length) and put them back before training goes on. Any other stage:
    nothing to do.
    """
    engine = getattr(trainer, "deepspeed", None)
    if engine is None or engine.zero_optimization_stage() != 3:
        yield
        return
    import deepspeed
    from trl.models.utils import add_hooks, remove_hooks

    with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
        remove_hooks(engine)
        try:
            yield
        finally:
            add_hooks(engine)


def _gather_one_by_one(sharded: list[torch.nn.Parameter]) -> dict[int, torch.Tensor]:
    """{id(param): its whole value} for ZeRO-3-partitioned parameters, gathered one at a time."""
    if not sharded:
        return {}
    import deepspeed

    whole = {}
    for param in sharded:
        with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
            whole[id(param)] = param.data.detach().clone()
    return whole


def _shifted(labels: torch.Tensor) -> torch.Tensor:
    """Labels as a causal LM scores them: each position's label is the next token's."""
    from ablate.components.contracts import IGNORE_INDEX

    return torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def _is_connector(name: str) -> bool:
    return name.startswith("connector.") or ".connector." in name


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights that training can change: parameters with requires_grad (contiguous copies)."""
    return {n: p.detach().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


COMPONENTS = ("encoder", "connector", "llm")


def stage_state_dict(model: torch.nn.Module, trainable) -> dict[str, torch.Tensor]:
    """Every weight of each component a stage trained (LoRA already merged): what it changed."""
    changed = [c for c in COMPONENTS if getattr(trainable, c) != "frozen"]
    return {
        n: t.detach().contiguous().clone()
        for n, t in model.state_dict().items()
        if n.split(".", 1)[0] in changed
    }
