"""Which MFU a plan uses: --mfu, a recorded step on that GPU (same kind first), else the default."""

from __future__ import annotations

import pytest

from ablate.errors import AblateError
from ablate.plan.gpus import GPUS, gpu_for_device
from ablate.plan.mfu import DEFAULT_MFU, choose_mfu, recorded_steps

H100 = GPUS["h100-80g"]
STEPS = [{"gpu": "h100-80g", "llm_trained": False, "achieved_tflops": 400.0},
         {"gpu": "h100-80g", "llm_trained": False, "achieved_tflops": 450.0},
         {"gpu": "h100-80g", "llm_trained": True, "achieved_tflops": 300.0}]


def test_given_mfu_wins():
    assert choose_mfu(0.5, H100, True, STEPS).value == 0.5


def test_recorded_steps_of_the_same_kind_then_any_on_that_gpu():
    frozen = choose_mfu(None, H100, False, STEPS)
    assert frozen.value == round(425 / 989, 3) and "2 LLM-frozen step(s)" in frozen.source
    assert choose_mfu(None, H100, True, STEPS).value == round(300 / 989, 3)
    assert choose_mfu(None, H100, True, STEPS[:2]).value == round(425 / 989, 3)  # no trained step: any on the GPU


def test_default_without_a_step_on_that_gpu():
    mfu = choose_mfu(None, GPUS["a100-80g"], True, STEPS)
    assert mfu.value == DEFAULT_MFU and mfu.source.startswith("default")


def test_the_recorded_file_is_read_and_checked(tmp_path):
    assert recorded_steps(tmp_path / "none.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text('[{"gpu": "h100-80g"}]')
    with pytest.raises(AblateError, match="achieved_tflops"):
        recorded_steps(bad)
    assert all(step["gpu"] in GPUS for step in recorded_steps())  # the checkout's own figures


@pytest.mark.parametrize("name, key", [("NVIDIA H100 80GB HBM3", "h100-80g"), ("NVIDIA A100-SXM4-40GB", "a100-40g"),
                                       ("NVIDIA A100-SXM4-80GB", "a100-80g"), ("NVIDIA H200", "h200"),
                                       ("NVIDIA H100 PCIe", "h100-pcie")])
def test_device_names_map_to_the_table(name, key):
    assert gpu_for_device(name).key == key
