"""Memory per GPU: the ZeRO partitioning and the activation formula against hand computations."""

from __future__ import annotations

import pytest

from ablate.plan.flops import Shapes
from ablate.plan.memory import activations, model_states, stage_memory
from ablate.plan.params import Params

# A 1,000-parameter bf16 LLM trained in full, a 100-parameter fp32 connector, a frozen fp32 encoder.
PARAMS = {
    "encoder": Params(400, 0, 400, 0, 4 * 400, 0),
    "connector": Params(100, 100, 100, 100, 4 * 100, 4 * 100),
    "llm": Params(1000, 1000, 900, 900, 2 * 1000, 2 * 1000),
}
SHAPES = Shapes(encoder_positions=5, encoder_layers=2, encoder_width=8, encoder_intermediate=16, connector_inputs=4,
                visual_tokens=4, llm_layers=3, llm_width=16, llm_intermediate=40, vocab=100)


@pytest.mark.parametrize("zero, expected", [
    # 1,500 parameters, 1,100 trained; DeepSpeed bf16: 2 bytes each, 2 per gradient, 12 of optimizer states
    (0, (1500 * 2, 1100 * 2, 1100 * 12)),
    (1, (1500 * 2, 1100 * 2, 1100 * 12 / 4)),
    (2, (1500 * 2, 1100 * 2 / 4, 1100 * 12 / 4)),
    (3, (1500 * 2 / 4, 1100 * 2 / 4, 1100 * 12 / 4)),
])
def test_zero_stages_partition_across_the_gpus(zero, expected):
    assert model_states(PARAMS, zero, 4, "bf16") == expected


def test_fp32_deepspeed_and_plain_ddp():
    assert model_states(PARAMS, 2, 4, "fp32") == (1500 * 4, 1100 * 4 / 4, 1100 * 8 / 4)  # no separate master copy
    # DDP: weights in their own dtypes (400 x 4 + 100 x 4 + 1000 x 2), gradients and AdamW's two moments like them
    trained = 100 * 4 + 1000 * 2
    assert model_states(PARAMS, None, 4, "bf16") == (400 * 4 + 100 * 4 + 1000 * 2, trained, 2 * trained)


def test_activations_by_hand():
    batch, seq = 2, 10
    layer = 2 * seq * batch * (9 * 16 + 4 * 40)  # bf16: 2 bytes x s b (9h + 4i) = 12,160
    logits = seq * batch * 100 * (2 + 4 + 4)  # bf16 logits, fp32 copy and log-softmax = 20,000
    full = 3 * layer + logits
    checkpointed = 3 * (2 * seq * batch * 16) + layer + logits  # layer inputs, one layer recomputed
    assert activations(SHAPES, False, batch, seq, "bf16") == (full, checkpointed) == (56_480, 34_080)
    encoder_layer = 2 * 5 * batch * (9 * 8 + 2 * 16)  # a trained encoder's 2 layers, 5 positions per image
    assert activations(SHAPES, True, batch, seq, "bf16")[0] == full + 2 * encoder_layer


def test_total_with_and_without_checkpointing():
    memory = stage_memory(PARAMS, SHAPES, zero=3, gpus=4, precision="bf16", batch=2, seq=10)
    states = 1500 * 2 / 4 + 1100 * 2 / 4 + 1100 * 12 / 4
    assert memory.total(True) == states + 34_080
    assert memory.total(False) == states + 56_480


def test_a_chunked_loss_holds_one_chunk_of_logits_whatever_the_length():
    from dataclasses import replace

    from ablate.model.loss import CHUNK_LOGITS

    big_vocab = replace(SHAPES, vocab=128_000)
    batch, seq = 4, 2048  # 1,048,576,000 logit values, 62.5 chunks
    layers = 3 * 2 * seq * batch * (9 * 16 + 4 * 40)
    full = activations(big_vocab, False, batch, seq, "bf16")[0]
    chunked = activations(big_vocab, False, batch, seq, "bf16", full_logits=False)[0]
    assert full == layers + seq * batch * 128_000 * 10
    assert chunked == layers + CHUNK_LOGITS * 10
    short = activations(SHAPES, False, 2, 10, "bf16", full_logits=False)  # fewer logits than one chunk
    assert short == activations(SHAPES, False, 2, 10, "bf16")


def test_evaluating_after_each_epoch_of_a_zero3_stage_gathers_the_weights_whole():
    def memory(zero=3, batch=2, seq=10, each_epoch=True):
        return stage_memory(PARAMS, SHAPES, zero=zero, gpus=4, precision="bf16", batch=batch, seq=seq,
                            evaluates_each_epoch=each_epoch)

    states = 1500 * 2 / 4 + 1100 * 2 / 4 + 1100 * 12 / 4  # 4,600
    assert memory(each_epoch=False).gathered_for_eval == 0
    assert memory().gathered_for_eval == 1500 * 2 * 3 / 4  # the other three GPUs' shares of the bf16 weights
    # two sequences of 10 hold more activations (34,080) than the gathered weights: the step is the peak
    assert memory().peak(True) == memory().total(True) == states + 34_080
    # one position: 1,704 bytes of activations, so the evaluation is the peak
    assert memory(batch=1, seq=1).peak(True) == states + 2250 > memory(batch=1, seq=1).total(True) == states + 1704
    assert memory(zero=2).gathered_for_eval == 0  # ZeRO-2 holds the weights whole already
