"""The `mixture` data source: a mixture block where a data source is expected (eval per data type)."""

from ablate.eval.evaluators import record_category
from ablate.registry import registries


def test_mixture_as_eval_source_tags_data_types():
    source = registries().data_source.get("mixture").build({"mixture": {"type": "inline", "sources": [
        {"source": {"type": "easy_vqa", "split": "test", "style": "detail", "images_limit": 20}, "count": 3},
        {"source": {"type": "easy_vqa", "split": "test", "style": "conversation", "images_limit": 20}, "count": 2},
    ]}})
    samples = source.samples()
    assert sorted(s["meta"]["data_type"] for s in samples) == ["conversation"] * 2 + ["detail"] * 3
    assert {record_category({"meta": s["meta"]}) for s in samples} == {"conversation", "detail"}
