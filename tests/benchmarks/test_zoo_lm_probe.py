"""benchmarks/zoo_lm_probe.py: the cases it splits yes/no questions into, and its printed figures."""

from __future__ import annotations

import pytest

from bench_scripts import load_script


@pytest.fixture(scope="module")
def probe():
    return load_script("zoo_lm_probe")


def test_cases_follow_the_answer_and_the_negation(probe):
    prompts = probe.probe_prompts(images=30)
    assert prompts and all(p.endswith("\nA:") for p, _, _ in prompts)
    for prompt, answer, (presence, form, _) in prompts:
        question = prompt.split("\nQ: ")[1][: -len("\nA:")]
        negated = " not " in f" {question} " or question.startswith("is no ")
        assert form == ("negated" if negated else "plain")
        assert presence == ("present" if (answer == "yes") != negated else "absent")
    assert {case[0] for _, _, case in prompts} == {"present", "absent"}


def test_prints_prior_and_accuracy_last(probe, capsys):
    from ablate.zoo import build

    probe.main(["--checkpoint", str(build("tiny-llama")), "--images", "4"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("prior ") and lines[-1].startswith("accuracy ")
    prompts = probe.probe_prompts(images=4)
    absent = sum(case[0] == "absent" for _, _, case in prompts) / len(prompts)
    assert float(lines[-2].split()[1]) == pytest.approx(absent, abs=5e-4)
    assert 0.0 <= float(lines[-1].split()[1]) <= 1.0


def test_lecture_prompts_put_a_lecture_between_the_same_description_and_question(probe):
    plain, lectured = probe.probe_prompts(images=30), probe.probe_prompts(images=30, lecture=True)
    known = probe.lectures()
    assert len(known) == 14 and len(lectured) == len(plain)
    used = set()
    for (p, answer, case), (q, answer2, case2) in zip(plain, lectured):
        description, question = p.split("\nQ: ")
        head, lecture = q.split("\nQ: ")[0].split("\n", 1)
        assert (answer, case) == (answer2, case2) and q.endswith("\nQ: " + question)
        assert lecture in known and head == description
        used.add(lecture)
    assert len(used) > 5
