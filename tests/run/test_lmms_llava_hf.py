"""lmms-eval's own `llava_hf` model scores an `ablate export` folder as the `ablate` model scores
the run folder, on a task written from the run's eval data (`ablate.eval.lmms_eval_task`):
the same prompt ids and pixels reach both models, their answers and scores are equal, and equal
to the run's own evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from llava_equivalence import expanded

TASK = "gqa_items"


class GenerateSpy:
    """Records the tensors a model's generate is called with, call by call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __enter__(self):
        real = self.model.generate

        def generate(*args, **kwargs):
            self.calls.append({k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})
            return real(*args, **kwargs)

        self.model.generate = generate
        return self

    def __exit__(self, *exc):
        del self.model.generate


@pytest.fixture(scope="module")
def evaluations(lmms_run, lmms_ablate_task, tmp_path_factory):
    """simple_evaluate on the task: `ablate` on the run folder, `llava_hf` (chat, and its simple
    variant) on the export; each with the generate inputs it fed (one document per call) and its
    model's config."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model

    from ablate.run.hf_llava import export_run
    from ablate.run.lmms_chat import allow_filelock_4
    from ablate.run.lmms_harness import task_manager

    root, _, _, result = lmms_run
    folder, _ = lmms_ablate_task
    export = tmp_path_factory.mktemp("llava_hf") / "llava"
    export_run(result.run_dir, export)
    allow_filelock_4()  # llava_hf does not do it; lmms-eval 0.7.3 needs it with filelock 4 (README)
    runs = {"ablate": ("ablate", f"pretrained={result.run_dir},device=cpu,batch_size=1", False),
            "llava_hf": ("llava_hf", f"pretrained={export},device=cpu,device_map=cpu,dtype=float32", False),
            "llava_hf_simple": ("llava_hf", f"pretrained={export},device=cpu,device_map=cpu,dtype=float32", True)}
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LMMS_EVAL_DATASETS_CACHE", str(root / "datasets"))
        for key, (name, args, simple) in runs.items():
            model = get_model(name, force_simple=simple).create_from_arg_string(args)
            config = model.model.config  # simple_evaluate frees llava_hf's model when it is done
            with GenerateSpy(model.model) as spy:
                results = simple_evaluate(model=model, tasks=[TASK], task_manager=task_manager([TASK], [str(folder)]),
                                          log_samples=True, batch_size=1)
            out[key] = results, spy.calls, config
    return out


def _answers(results):
    return [s["filtered_resps"][0].strip() for s in sorted(results["samples"][TASK], key=lambda s: s["doc_id"])]


@pytest.mark.parametrize("variant", ["llava_hf", "llava_hf_simple"])
def test_llava_hf_is_fed_the_export_of_what_the_ablate_model_is_fed(evaluations, variant):
    """Each document's ids (ablate's image placeholder expanded) and pixels; the simple variant
    runs the documents longest first."""
    _, ours, _ = evaluations["ablate"]
    _, theirs, config = evaluations[variant]
    assert len(ours) == len(theirs) == 8  # one call per document
    unmatched = [(expanded(call["input_ids"][0].tolist(), config.image_token_index, config.image_seq_length),
                  call["pixel_values"]) for call in ours]
    for call in theirs:
        ids, pixels = call["input_ids"][0].tolist(), call["pixel_values"]
        match = next((n for n, (i, p) in enumerate(unmatched) if i == ids and torch.equal(p, pixels)), None)
        assert match is not None, "llava_hf was fed ids and pixels that the ablate model was not"
        unmatched.pop(match)


@pytest.mark.parametrize("variant", ["llava_hf", "llava_hf_simple"])
def test_llava_hf_answers_and_scores_the_export_as_ablate_does(evaluations, variant):
    ours, _, _ = evaluations["ablate"]
    theirs, _, _ = evaluations[variant]
    assert _answers(theirs) == _answers(ours)
    assert theirs["results"][TASK]["accuracy,none"] == ours["results"][TASK]["accuracy,none"]


def test_the_ablate_model_answers_and_scores_as_the_runs_own_evaluation(lmms_run, evaluations):
    result = lmms_run[3]
    ours, _, _ = evaluations["ablate"]
    own = [json.loads(line) for line in (result.run_dir / "predictions.jsonl").read_text().splitlines()]
    assert _answers(ours) == [record["prediction"] for record in own]
    accuracy = ours["results"][TASK]["accuracy,none"]
    assert accuracy == result.eval_metrics["accuracy"]
    assert 0 < accuracy < 1  # right and wrong answers: a scorer that differs would show
