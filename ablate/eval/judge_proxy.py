"""lmms-eval's judged tasks (MM-Vet, LLaVA-Bench in the wild, ...) through ablate's judge cache.

lmms-eval's tasks call their judge themselves, over HTTP, at the endpoint and with the model its
environment names (OPENAI_API_URL, MODEL_VERSION, API_TYPE, read when a task's code loads).
`pinned_judge` serves a local OpenAI-compatible endpoint, points those variables at it for the
duration, and answers each request from ablate's judge cache (`ablate.eval.judge_cache`) or, on
a miss, from the recipe's judge endpoint, caching the reply. The cache key is the whole request
(model, messages, temperature, max_tokens, ...), as for ablate's own judge: one cache serves
both, and a request either judge made before is never paid for again.

The proxy answers every POST, whatever its path: lmms-eval's OpenAI provider posts to
`<OPENAI_API_URL>/chat/completions`, while some tasks (MMBench) post to OPENAI_API_URL itself.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any, Iterator

from ablate.errors import AblateError
from ablate.eval.chat_api import ChatEndpoint
from ablate.eval.json_http import JSONHandler
from ablate.eval.judge_cache import JudgeCache, cached_reply

# lmms-eval refuses to call its OpenAI judge without a key; the proxy adds the real one (if any).
PLACEHOLDER_KEY = "ablate-judge-proxy"


def request_problem(body: Any) -> str | None:
    """Why `body` is not a chat request the proxy can answer, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "expected a JSON object with a model name"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "expected a non-empty list of messages"
    if body.get("stream"):
        return "streaming replies are not supported by ablate's judge proxy"
    return None


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, endpoint: ChatEndpoint, cache: JudgeCache | None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.endpoint, self.cache = endpoint, cache

    def answer(self, request: dict[str, Any]) -> str:
        return cached_reply(self.cache, self.endpoint, request)


class _Handler(JSONHandler):
    server: _ProxyServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.json_body()
        if problem := request_problem(body):
            return self.send_json(400, {"error": {"message": problem}})
        try:
            text = self.server.answer(body)
        except AblateError as exc:  # the real judge failed after its retries
            return self.send_json(502, {"error": {"message": str(exc)}})
        self.send_json(200, completion(body["model"], text))


def completion(model: str, text: str) -> dict[str, Any]:
    """An OpenAI chat completion carrying `text` (the fields OpenAI clients read)."""
    return {"id": "chatcmpl-ablate-proxy", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


@contextmanager
def judge_proxy(endpoint: ChatEndpoint, cache: JudgeCache | None) -> Iterator[str]:
    """Serve the proxy on a free local port; yields its OpenAI-style API root (…/v1)."""
    server = _ProxyServer(endpoint, cache)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def pinned_judge(model: str, endpoint: str, *, api_key_env: str = "OPENAI_API_KEY",
                 cache_dir: str | None = None) -> Iterator[str]:
    """lmms-eval's judge pinned to `model` at `endpoint`, through the proxy and the judge cache,
    until the block ends (the variables are restored then); yields the proxy's URL."""
    from ablate.eval.judges import cache_at

    real = ChatEndpoint(endpoint, os.environ.get(api_key_env) or None, label=f"lmms-eval judge {model}")
    with judge_proxy(real, cache_at(cache_dir, "eval.judge")) as url:
        pins = {"API_TYPE": "openai", "MODEL_VERSION": model, "OPENAI_API_URL": url, "OPENAI_BASE_URL": url,
                "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY}
        before = {name: os.environ.get(name) for name in pins}
        os.environ.update(pins)
        try:
            yield url
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
