"""The LLM-judged evaluator (`gpt4_relative_score`) against a local OpenAI-compatible server."""

import socket

import pytest
from judge_server import reply, send, serve

from ablate.errors import AblateError
from ablate.eval.judges import parse_scores, relative_scores
from ablate.registry import registries

ENVS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ABLATE_JUDGE_BASE_URL")


@pytest.fixture
def no_endpoint(monkeypatch):
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _own_judge_cache(monkeypatch, tmp_path):
    """Each test starts with an empty judge cache, so every request reaches its server."""
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))


@pytest.fixture
def judge_server():
    """An OpenAI-compatible /chat/completions that scores by a rule and records the requests."""
    seen = []

    def answer(handler, body):
        seen.append({"path": handler.path, "auth": handler.headers.get("Authorization"), "body": body})
        scores = "8 4" if "wrong answer" in body["messages"][-1]["content"] else "7 7"
        send(handler, 200, reply(f"{scores}\nBecause."))

    with serve(answer) as url:
        yield url, seen


def test_without_endpoint_or_key_the_judge_fails_clearly(no_endpoint):
    entry = registries().evaluator.get("gpt4_relative_score")
    with pytest.raises(AblateError) as info:
        entry.build({})
    text = str(info.value)
    assert "OPENAI_API_KEY" in text and "ABLATE_JUDGE_BASE_URL" in text and "cannot be computed offline" in text


def test_relative_score_through_an_openai_compatible_api(no_endpoint, monkeypatch, judge_server):
    url, seen = judge_server
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    judge = registries().evaluator.get("gpt4_relative_score").build(
        {"base_url": url, "api_key_env": "MY_JUDGE_KEY", "model": "judge-1"})
    records = [
        {"id": "1", "prompt": "What is shown?", "prediction": "a wrong answer", "answer": "A cat.",
         "meta": {"category": "conv", "caption": "a cat on a mat"}},
        {"id": "2", "prompt": "Describe it.", "prediction": "A cat on a mat.", "answer": "A cat.", "meta": {"category": "detail"}},
    ]
    judged = [judge.judge(r) for r in records]
    assert [j["judge_scores"] for j in judged] == [[8.0, 4.0], [7.0, 7.0]]
    assert [j["correct"] for j in judged] == [False, True]
    scores = judge.score(judged)
    assert scores["relative_score"] == 73.3  # 100 x 5.5 / 7.5, rounded as LLaVA rounds
    assert scores["relative_score/conv"] == pytest.approx(50.0)
    assert scores["relative_score/detail"] == pytest.approx(100.0)
    assert scores["accuracy"] == 0.5
    assert seen[0]["path"] == "/v1/chat/completions" and seen[0]["auth"] == "Bearer sk-test"
    body = seen[0]["body"]
    assert body["model"] == "judge-1" and "a cat on a mat" in body["messages"][-1]["content"]


def test_base_url_from_env_needs_no_key(no_endpoint, monkeypatch, judge_server):
    url, seen = judge_server
    monkeypatch.setenv("ABLATE_JUDGE_BASE_URL", url)
    judge = registries().evaluator.get("gpt4_relative_score").build({})
    assert judge.judge({"id": "1", "prompt": "q", "prediction": "p", "answer": "a"})["judge_scores"] == [7.0, 7.0]
    assert seen[0]["auth"] is None


def test_unreachable_judge_is_an_ablate_error(no_endpoint):
    judge = registries().evaluator.get("gpt4_relative_score").build({"base_url": "http://127.0.0.1:9/v1", "retries": 0})
    with pytest.raises(AblateError, match="the judge at http://127.0.0.1:9/v1/chat/completions failed"):
        judge.judge({"id": "1", "prompt": "q", "prediction": "p", "answer": "a"})


def test_parse_scores_as_llava_parses_them():
    assert parse_scores("8 6\nreview") == (8.0, 6.0)
    assert parse_scores("8,6") == (8.0, 6.0)
    assert parse_scores("8.5 6\r\nreview") == (8.5, 6.0)
    # LLaVA splits on single spaces after reading commas as spaces: these are failures there too
    assert parse_scores("8, 6") is None
    assert parse_scores(" 8 6") is None
    assert parse_scores("8/10 6/10") is None
    assert parse_scores("Assistant 1 gets 8") is None
    assert parse_scores("") is None


def test_relative_scores_match_llavas_summary_on_uneven_means():
    """LLaVA's summary: numpy means of the score pairs, rounded to 3 places, the ratio to 1."""
    import numpy as np

    rng = np.random.default_rng(0)
    pairs = [[float(a), float(b)] for a, b in rng.integers(1, 21, size=(37, 2)) / 2] + [[-1, -1]]
    records = [{"judge_scores": p, "correct": False, "meta": {"category": "conv" if i % 3 else "detail"}}
               for i, p in enumerate(pairs)]
    scores = relative_scores(records)
    for name, group in (("", pairs), ("/conv", [p for i, p in enumerate(pairs) if i % 3]),
                        ("/detail", [p for i, p in enumerate(pairs) if not i % 3])):
        reference, model = (round(x, 3) for x in np.asarray(group).mean(0).tolist())
        assert scores["relative_score" + name] == round(model / reference * 100, 1)
        assert scores["reference_score" + name] == round(reference * 10, 1)
        assert scores["model_score" + name] == round(model * 10, 1)


@pytest.fixture
def scripted_server():
    """A server answering the n-th request with script[n]: "reset" (close without a reply) or
    (status, body). Requests past the script get 410 and are counted, so a test sees any extra."""
    script: list = []
    hits: list[int] = []

    def answer(handler, _body):
        hits.append(len(hits))
        step = script[len(hits) - 1] if len(hits) <= len(script) else (410, b"past the script")
        if step == "reset":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            send(handler, *step)

    with serve(answer) as url:
        yield url, script, hits


RECORD = {"id": "1", "prompt": "q", "prediction": "p", "answer": "a"}


def _judge(url: str, retries: int):
    return registries().evaluator.get("gpt4_relative_score").build(
        {"base_url": url, "retries": retries, "retry_wait_s": 0})


@pytest.mark.parametrize("failure", [(500, b"overloaded"), (429, b"slow down"), "reset"])
def test_the_judge_retries_a_failed_request(no_endpoint, scripted_server, failure):
    url, script, hits = scripted_server
    script += [failure, (200, reply("6 9\nfine"))]
    assert _judge(url, retries=1).judge(RECORD)["judge_scores"] == [6.0, 9.0]
    assert len(hits) == 2


def test_the_judge_gives_up_after_its_retries_with_the_last_error(no_endpoint, scripted_server):
    url, script, hits = scripted_server
    script += ["reset", (502, b"bad gateway"), (503, b"still down"), (200, reply("6 9"))]
    with pytest.raises(AblateError) as info:
        _judge(url, retries=2).judge(RECORD)
    assert str(info.value) == f"gpt4_relative_score: the judge at {url}/chat/completions failed after 3 attempts: HTTP 503: still down"
    assert len(hits) == 3


@pytest.mark.parametrize("step, error", [
    ((400, b"bad model"), "HTTP 400: bad model"),
    ((200, b"[]"), "unexpected response (TypeError: list indices must be integers or slices, not str)"),
    ((200, b"not json"), "unexpected response (JSONDecodeError: Expecting value: line 1 column 1 (char 0))"),
])
def test_a_bad_request_or_reply_is_not_retried(no_endpoint, scripted_server, step, error):
    url, script, hits = scripted_server
    script += [step, (200, reply("6 9"))]
    with pytest.raises(AblateError) as info:
        _judge(url, retries=3).judge(RECORD)
    assert str(info.value).endswith(f"failed after 1 attempt: {error}")
    assert len(hits) == 1
