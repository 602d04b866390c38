"""Every built-in evaluator and answer format keeps the typed contracts the run relies on."""

import pytest

from ablate.eval.contracts import AnswerFormat, Evaluator
from ablate.registry import registries

# (evaluator config, metric_prefix, benchmark_prefix)
EVALUATORS = [
    ({"type": "exact_match"}, "eval", None),
    ({"type": "scienceqa"}, "eval", "scienceqa"),
    ({"type": "gpt4_relative_score", "base_url": "http://127.0.0.1:9/v1"}, "eval", None),
]


@pytest.mark.parametrize("config, metric_prefix, benchmark_prefix", EVALUATORS)
def test_built_in_evaluators_declare_the_protocol(config, metric_prefix, benchmark_prefix):
    evaluator = registries().evaluator.get(config["type"]).build(config)
    assert isinstance(evaluator, Evaluator)
    assert (evaluator.metric_prefix, evaluator.benchmark_prefix) == (metric_prefix, benchmark_prefix)


def test_every_registered_evaluator_is_covered():
    assert {c["type"] for c, _, _ in EVALUATORS} == set(registries().evaluator.names())


def test_answer_formats_state_their_facts():
    registry = registries().answer_format
    formats = {name: registry.get(name).build() for name in registry.names()}
    assert all(isinstance(f, AnswerFormat) for f in formats.values())
    facts = {(f.target, f.bare_answer) for name, f in formats.items()
             if name.startswith(("QCM", "CQM")) and not name.endswith("-text")}
    assert facts == {("letter", False)}  # every prompt code says "The answer is X." or "ANSWER: X."
    text_facts = {(f.target, f.bare_answer) for name, f in formats.items() if name.endswith("-text")}
    assert text_facts == {("text", False)}  # "The answer is <option text>." among reasoning
    assert (formats["llava15_mc"].target, formats["llava15_mc"].bare_answer) == ("letter", True)
    assert (formats["llava15_short"].target, formats["llava15_short"].bare_answer) == ("text", True)


def test_compatibility_checks_read_the_format_facts():
    regs = registries()
    short, reasoning, mc = (regs.answer_format.get(k).build() for k in ("llava15_short", "QCM-LEA", "llava15_mc"))
    scienceqa = regs.evaluator.get("scienceqa").build({})
    assert "answers with the option's text" in scienceqa.check_answer_format(short)
    assert scienceqa.check_answer_format(reasoning) is None
    assert regs.evaluator.get("scienceqa").build({"match_choice_text": True}).check_answer_format(short) is None
    exact = regs.evaluator.get("exact_match").build({})
    assert exact.check_answer_format(mc) is None and exact.check_answer_format(short) is None
    assert "set answer_pattern" in exact.check_answer_format(reasoning)
