"""LLaVA-Bench judged as LLaVA judges it, against a local OpenAI-compatible server, with the cache."""

import sys
from pathlib import Path

import pytest
from judge_server import reply, send, serve

from ablate.eval.generation import prompt_turns, reference_answer
from ablate.eval.judge_cache import JudgeCacheWarning
from ablate.eval.judges import DEFAULT_SYSTEM_PROMPT
from ablate.registry import registries

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from llava_bench_copy import COCO_CONTEXT, RULES, write_coco_copy  # noqa: E402

# the model's answer and the judge's first line, per question id
PREDICTIONS = {"0": "It is blue.", "1": "A bus.", "2": "It broke down.", "3": "Two.", "4": "Sleep."}
VERDICTS = {"It is blue.": "8 6", "A bus.": "7,7", "It broke down.": "9 6", "Two.": "I cannot say", "Sleep.": "6 8"}
LIMIT = 20  # requests past this get a 500 and fail the test: nothing may loop


@pytest.fixture
def judge_server(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ABLATE_JUDGE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    seen = []

    def answer(handler, body):
        seen.append(body)
        if len(seen) > LIMIT:
            return send(handler, 500, b"too many requests")
        content = body["messages"][-1]["content"]
        verdict = next(v for p, v in VERDICTS.items() if f"[Assistant 2]\n{p}\n" in content)
        send(handler, 200, reply(f"{verdict}\nAssistant 1 is more precise."))

    with serve(answer) as url:
        yield url, seen


def _judge(url, **config):
    return registries().evaluator.get("gpt4_relative_score").build({"base_url": url, "model": "judge-x", **config})


def _records(folder, predictions=PREDICTIONS):
    """The records generation hands the evaluator, from the `llava_bench` source's samples."""
    samples = registries().data_source.get("llava_bench").build({"path": str(folder)}).samples()
    return [{"id": s["id"], "prompt": prompt_turns(s)[-1]["value"], "prediction": predictions[s["id"]],
             "answer": reference_answer(s), "meta": s["meta"]} for s in samples]


def test_the_request_is_llavas_with_the_rule_of_the_category(tmp_path, judge_server):
    url, seen = judge_server
    records = _records(write_coco_copy(tmp_path / "bench"))
    _judge(url).judge(records[0])
    assert seen == [{
        "model": "judge-x", "temperature": 0.2, "max_tokens": 1024,
        "messages": [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": (
                f"[Context]\n{COCO_CONTEXT['000000000001.jpg']}\n\n[Question]\nWhat colour is the bus?\n\n"
                "[Assistant 1]\nThe bus is red.\n\n[End of Assistant 1]\n\n"
                "[Assistant 2]\nIt is blue.\n\n[End of Assistant 2]\n\n"
                f"[System]\n{RULES['conv']['prompt']}\n\n")},
        ],
    }]


def _evaluate(judge, records):
    return judge.score([judge.judge(r) for r in records])


def test_scores_are_llavas_summary_and_a_second_evaluation_asks_nothing(tmp_path, judge_server):
    url, seen = judge_server
    records = _records(write_coco_copy(tmp_path / "bench"))
    scores = _evaluate(_judge(url), records)
    assert len(seen) == 5
    # (reference, model): conv (8, 6) and a failure (-1, -1); detail (7, 7); complex (9, 6), (6, 8)
    assert scores == {
        "relative_score": 89.7, "reference_score": 58.0, "model_score": 52.0,  # means 5.8, 5.2
        "relative_score/conv": 71.4, "reference_score/conv": 35.0, "model_score/conv": 25.0,  # 2.5 / 3.5
        "relative_score/detail": 100.0, "reference_score/detail": 70.0, "model_score/detail": 70.0,
        "relative_score/complex": 93.3, "reference_score/complex": 75.0, "model_score/complex": 70.0,  # 7 / 7.5
        "accuracy": 0.4, "judged_items": 5.0, "judge_failures": 1.0,
    }
    again = _evaluate(_judge(url), records)  # a fresh judge, as a re-run or `ablate report` builds one
    assert again == scores and len(seen) == 5


def test_a_changed_answer_or_judge_model_is_asked_again(tmp_path, judge_server):
    url, seen = judge_server
    folder = write_coco_copy(tmp_path / "bench")
    _evaluate(_judge(url), _records(folder))
    _evaluate(_judge(url), _records(folder, {**PREDICTIONS, "1": "Sleep."}))
    assert len(seen) == 6 and seen[-1]["messages"][-1]["content"].count("[Assistant 2]\nSleep.\n") == 1
    _judge(url, model="judge-y").judge(_records(folder)[0])
    assert len(seen) == 7 and seen[-1]["model"] == "judge-y"


def test_a_corrupted_cache_entry_is_named_and_asked_again(tmp_path, judge_server):
    url, seen = judge_server
    records = _records(write_coco_copy(tmp_path / "bench"))[:1]
    judge = _judge(url)
    first = judge.judge(records[0])
    entry = judge.cache.path({"model": "judge-x", "messages": judge.messages(records[0]),
                              "temperature": 0.2, "max_tokens": 1024})
    entry.write_text('{"request": ')  # a write cut short
    with pytest.warns(JudgeCacheWarning, match=f"judge cache entry {entry} is corrupted .not JSON"):
        assert _judge(url).judge(records[0]) == first
    assert len(seen) == 2
    assert _judge(url).judge(records[0]) == first and len(seen) == 2  # the entry was rewritten whole


def test_without_the_cache_every_evaluation_asks(tmp_path, judge_server):
    url, seen = judge_server
    records = _records(write_coco_copy(tmp_path / "bench"))[:2]
    _evaluate(_judge(url, cache=False), records)
    _evaluate(_judge(url, cache=False), records)
    assert len(seen) == 4 and not (tmp_path / "home" / "judge_cache").exists()
