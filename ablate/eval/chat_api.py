"""One OpenAI-compatible chat endpoint: POST a request to `<base_url>/chat/completions`, get the
reply's text, retrying network errors, 429 and 5xx with a doubling wait (at most 30 s).

Shared by ablate's judge (`ablate.eval.judges`) and the judge proxy lmms-eval's judged tasks
talk to (`ablate.eval.judge_proxy`). urllib, not the `openai` package: one POST needs no
dependency, and the same code reaches any OpenAI-compatible server (vLLM, a gateway, a fake).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ablate.errors import AblateError


@dataclass
class ChatEndpoint:
    base_url: str
    api_key: str | None = None
    timeout_s: float = 120.0
    retries: int = 3
    retry_wait_s: float = 1.0
    label: str = "judge"  # starts every error message, e.g. the evaluator's name

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def reply(self, request: dict[str, Any]) -> str:
        """The reply's text; an AblateError naming the endpoint and the last error when every attempt fails."""
        body = json.dumps(request).encode()
        attempts = self.retries + 1
        for attempt in range(attempts):
            reply, error, retryable = self._post(body)
            if reply is not None:
                return reply
            if not retryable or attempt == attempts - 1:
                break
            time.sleep(min(self.retry_wait_s * 2 ** attempt, 30.0))
        tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
        raise AblateError(f"{self.label}: the judge at {self.url} failed {tries}: {error}")

    def _post(self, body: bytes) -> tuple[str | None, str, bool]:
        """(the reply's text, or None with the error and whether a retry may help)."""
        import http.client
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
            return str(payload["choices"][0]["message"]["content"]), "", False
        except urllib.error.HTTPError as exc:  # rate limits and server errors pass; a bad request does not
            return None, f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}", exc.code == 429 or exc.code >= 500
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # resets, refusals, timeouts
            return None, f"{type(exc).__name__}: {exc}", True
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return None, f"unexpected response ({type(exc).__name__}: {exc})", False
