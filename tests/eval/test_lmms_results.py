"""lmms-eval's result keys as MLflow metric names (ablate.eval.lmms_results)."""

from mlflow.utils.validation import _validate_metric_name

from ablate.eval.lmms_results import flat_metrics, metric_name


def test_metric_names_drop_the_unfiltered_suffix_and_keep_other_filters_as_a_level():
    assert metric_name("gqa", "exact_match,none") == "gqa/exact_match"
    assert metric_name("mme", "mme_perception_score,none") == "mme/mme_perception_score"
    assert metric_name("gsm8k", "exact_match,flexible-extract") == "gsm8k/exact_match/flexible-extract"
    assert metric_name("odd task", "acc@1,norm") == "odd task/acc_1/norm"


def test_only_finite_numbers_are_kept_and_every_name_is_one_mlflow_accepts():
    results = {
        "gqa": {"alias": "gqa", "exact_match,none": 0.5, "exact_match_stderr,none": 0.19,
                "exact_match_stderr_clustered,none": "N/A"},
        "mmvet": {"alias": "mmvet", "gpt_eval_score,none": 31.5, "gpt_eval_score_stderr,none": float("nan")},
        "pope": {"pope_f1_score,none": True},
    }
    metrics = flat_metrics(results)
    assert metrics == {"gqa/exact_match": 0.5, "gqa/exact_match_stderr": 0.19, "mmvet/gpt_eval_score": 31.5}
    for name in metrics:
        _validate_metric_name(f"lmms_eval/{name}")
