"""A stand-in judge for judged evaluators (gpt4_relative_score) while a rehearsal runs.

A local OpenAI-compatible `/chat/completions` endpoint, reached through ABLATE_JUDGE_BASE_URL
(the variable ablate's judge reads first; a recipe's pinned lmms-eval judge, `eval.judge`, is
pointed at it by the rehearsal). It checks that each request is a chat request (a model, and
messages with roles and text) and answers every one with the same reply, which both kinds of
judged scoring read: LLaVA-Bench's two scores (the reference 0.7, the answer 0.6) and MM-Vet's
one correctness score in [0, 1] (0.7). So the rehearsal runs the judges' request, parsing and
scoring code without an API key and without a bill. It cannot say whether answers are good:
nothing at this size can.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Iterator

from ablate.eval.json_http import JSONHandler

ENV = "ABLATE_JUDGE_BASE_URL"
REPLY = "0.7 0.6\nA stand-in judge scored this: the rehearsal checks the judging code, not the answers."


def request_problem(body: object) -> str | None:
    """Why `body` is not an OpenAI chat request, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "expected a JSON object with a model name"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty list of messages"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
               for m in messages):
        return "every message needs a role and text content"
    return None


class _Handler(JSONHandler):  # the rehearsal's own output says what it used
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.json_body()
        problem = "not found" if not self.path.endswith("/chat/completions") else request_problem(body)
        if problem:
            self.send_json(404 if problem == "not found" else 400, {"error": {"message": problem}})
        else:
            self.send_json(200, {"object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                                              "finish_reason": "stop"}]})


@contextmanager
def stand_in_judge() -> Iterator[str]:
    """Serve the stand-in on a free local port and point ABLATE_JUDGE_BASE_URL at it; yields the URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    before = os.environ.get(ENV)
    os.environ[ENV] = url
    try:
        yield url
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        server.shutdown()
        server.server_close()
