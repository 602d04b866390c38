"""lmms-eval's judged tasks through ablate's judge proxy (ablate.eval.judge_proxy), against a local
OpenAI-compatible server: the recipe's model and endpoint are the ones called, and replies are
shared with ablate's own judge through one cache."""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.error
import urllib.request

import pytest
from judge_server import reply, send, serve

from ablate.eval.judge_cache import JudgeCache
from ablate.eval.judge_proxy import PLACEHOLDER_KEY, pinned_judge
from ablate.eval.lmms_tasks import lmms_tasks_dir
from ablate.registry import registries

PINNED = ("API_TYPE", "MODEL_VERSION", "OPENAI_API_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY")


@pytest.fixture
def judge(monkeypatch, tmp_path):
    """A server answering "0.6 ..." and recording what reached it; a fresh ABLATE_HOME (judge cache)."""
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    for name in PINNED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-real")
    seen = []

    def answer(handler, body):
        seen.append({"auth": handler.headers.get("Authorization"), "body": body})
        send(handler, 200, reply("0.6 because"))

    with serve(answer) as url:
        yield url, seen


def _mmvet_utils():
    """lmms-eval's own mmvet scoring module, loaded as lmms-eval loads a task's utils: afresh, so
    it reads the judge variables set now."""
    path = lmms_tasks_dir() / "mmvet" / "utils.py"
    spec = importlib.util.spec_from_file_location("mmvet_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOC = {"question_id": "v1", "question": "What is in the image?", "answer": "a cat", "capability": "rec"}


def test_mmvet_is_judged_by_the_pinned_model_through_the_cache(judge):
    url, seen = judge
    with pinned_judge("judge-x", url, api_key_env="MY_JUDGE_KEY") as proxy:
        assert {name: os.environ[name] for name in PINNED} == {
            "API_TYPE": "openai", "MODEL_VERSION": "judge-x", "OPENAI_API_URL": proxy, "OPENAI_BASE_URL": proxy,
            "OPENAI_API_KEY": PLACEHOLDER_KEY}
        mmvet = _mmvet_utils()
        first = mmvet.mmvet_process_results(DOC, ["A cat."])["gpt_eval_score"]
        again = mmvet.mmvet_process_results(DOC, ["A cat."])["gpt_eval_score"]
    assert first["score"] == again["score"] == 0.6
    assert len(seen) == 1  # the second request came from the cache
    assert seen[0]["auth"] == "Bearer sk-real"  # the proxy sends the recipe's key, not lmms-eval's placeholder
    request = seen[0]["body"]
    assert request["model"] == "judge-x" and "A cat." in request["messages"][0]["content"]
    assert all(name not in os.environ for name in PINNED)  # restored: they were unset before
    assert JudgeCache(cache_root()).get(request) == "0.6 because"  # where ablate's judge looks


def cache_root():
    from ablate.zoo import ablate_home

    return ablate_home() / "judge_cache"


def test_a_request_ablates_judge_made_is_not_paid_again_by_lmms_eval(judge):
    url, seen = judge
    ours = registries().evaluator.get("gpt4_relative_score").build(
        {"base_url": url, "model": "judge-x", "temperature": 0.0, "max_tokens": 128})
    messages = [{"role": "user", "content": "Rate: 1 or 2?"}]
    assert ours.ask(messages) == "0.6 because" and len(seen) == 1
    with pinned_judge("judge-x", url) as proxy:
        body = json.dumps({"model": "judge-x", "messages": messages, "max_tokens": 128, "temperature": 0.0}).encode()
        request = urllib.request.Request(f"{proxy}/chat/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
    assert answer["choices"][0]["message"]["content"] == "0.6 because" and answer["model"] == "judge-x"
    assert len(seen) == 1


def test_the_proxy_refuses_what_is_not_a_chat_request_and_relays_a_failing_judge(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))

    def broken(handler, body):
        send(handler, 400, b'{"error": "bad model"}')

    with serve(broken) as url, pinned_judge("judge-x", url) as proxy:
        for body, status, message in ((b'{"messages": []}', 400, "expected a JSON object with a model name"),
                                      (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', 502,
                                       f"the judge at {url}/chat/completions failed after 1 attempt: HTTP 400")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(proxy, data=body, method="POST"))
            assert refused.value.code == status
            assert message in json.loads(refused.value.read())["error"]["message"]
