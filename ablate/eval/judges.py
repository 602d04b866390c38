"""LLM-judged evaluators (registry `evaluator`), for metrics that need a judge model.

`gpt4_relative_score`: LLaVA's LLaVA-Bench metric. A judge model behind an OpenAI-compatible
chat API reads the question (and any text description of the image in the record's meta:
`caption`/`context`), the reference answer (LLaVA-Bench ships GPT-4's answers) and the
model's answer, and scores each 1-10. The relative score is
100 x sum(model scores) / sum(reference scores), overall and per category
(`relative_score/<category>`). `accuracy` is the share of items where the model scored at
least as high as the reference (each record's `correct`).

The endpoint comes from the config (`base_url`, `api_key_env`) or the environment
(ABLATE_JUDGE_BASE_URL or OPENAI_BASE_URL; OPENAI_API_KEY). Without either, building the
evaluator raises an AblateError saying what to set: it cannot run offline.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Iterable

from pydantic import Field

from ablate.errors import AblateError
from ablate.eval.contracts import EvaluatorBase
from ablate.registry import ComponentConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENVS = ("ABLATE_JUDGE_BASE_URL", "OPENAI_BASE_URL")

SYSTEM_PROMPT = (
    "You grade answers to questions about an image you cannot see; you are given a text "
    "description of it instead. Judge each answer for helpfulness, relevance, accuracy and level of detail."
)
USER_TEMPLATE = """Image description:
{context}

Question:
{question}

Answer 1:
{reference}

Answer 2:
{prediction}

Give each answer an overall score from 1 to 10 (higher is better). On the first line write only the two
scores, Answer 1's then Answer 2's, separated by a space. From the second line on, explain your scores
briefly, without letting the order of the answers or their length sway you."""


class GPT4RelativeScoreConfig(ComponentConfig):
    model: str = Field("gpt-4-0314", description="judge model name at the endpoint (LLaVA used GPT-4-0314)")
    base_url: str | None = Field(
        None, description="OpenAI-compatible API root, e.g. http://localhost:8000/v1 "
        "(default: $ABLATE_JUDGE_BASE_URL, $OPENAI_BASE_URL, else api.openai.com with a key)",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    temperature: float = Field(0.2, ge=0)
    max_tokens: int = Field(512, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0, description="retries on network errors, 429 and 5xx")
    retry_wait_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each retry, at most 30 s")


class RelativeScoreJudge(EvaluatorBase):
    def __init__(self, config: GPT4RelativeScoreConfig, base_url: str, api_key: str | None):
        self.config, self.base_url, self.api_key = config, base_url.rstrip("/"), api_key

    # --- the API ---------------------------------------------------------------------------

    def _chat(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.config.model, "messages": messages,
                           "temperature": self.config.temperature, "max_tokens": self.config.max_tokens}).encode()
        url = f"{self.base_url}/chat/completions"
        attempts = self.config.retries + 1
        for attempt in range(attempts):
            reply, error, retryable = self._post(url, body)
            if reply is not None:
                return reply
            if not retryable or attempt == attempts - 1:
                break
            time.sleep(min(self.config.retry_wait_s * 2 ** attempt, 30.0))
        tries = f"after {attempt + 1} attempt{'s' if attempt else ''}"
        raise AblateError(f"gpt4_relative_score: the judge at {url} failed {tries}: {error}")

    def _post(self, url: str, body: bytes) -> tuple[str | None, str, bool]:
        """(the reply's text, or None with the error and whether a retry may help)."""
        import http.client
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                payload = json.loads(response.read())
            return str(payload["choices"][0]["message"]["content"]), "", False
        except urllib.error.HTTPError as exc:  # rate limits and server errors pass; a bad request does not
            return None, f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}", exc.code == 429 or exc.code >= 500
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # resets, refusals, timeouts
            return None, f"{type(exc).__name__}: {exc}", True
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return None, f"unexpected response ({type(exc).__name__}: {exc})", False

    # --- the evaluator contract ------------------------------------------------------------

    def judge(self, record: dict[str, Any]) -> dict[str, Any]:
        meta = record.get("meta") or {}
        context = meta.get("context") or meta.get("caption") or "(none given)"
        reference = record.get("answer")
        reference = reference[0] if isinstance(reference, (list, tuple)) and reference else reference
        text = self._chat([
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(
                context=context, question=record.get("prompt", ""), reference=reference or "",
                prediction=record.get("prediction") or "")},
        ])
        scores = parse_scores(text)
        out = {**record, "judge_review": text}
        if scores is None:
            return {**out, "judge_scores": None, "correct": False}
        return {**out, "judge_scores": list(scores), "correct": scores[1] >= scores[0]}

    def score(self, records: Iterable[dict[str, Any]]) -> dict[str, float]:
        return relative_scores(self.judged(records, "gpt4_relative_score", done_key="judge_scores"))


def parse_scores(text: str) -> tuple[float, float] | None:
    """The two scores on the judge's first line ("8 6", "8, 6", "8.5/10 6/10"); None if absent."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    match = _SCORES.fullmatch(first.strip())
    if match is None:
        return None
    scores = float(match.group(1)), float(match.group(2))
    return scores if all(0 <= x <= 10 for x in scores) else None


_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*/\s*10)?"
_SCORES = re.compile(_NUMBER + r"\s*[,;\s]\s*" + _NUMBER)


def relative_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    from ablate.eval.evaluators import record_category

    scored = [r for r in records if r.get("judge_scores")]
    if not scored:
        raise AblateError("gpt4_relative_score: the judge scored no item (its replies had no scores)")
    groups: dict[str, list[dict[str, Any]]] = {"": scored}
    for record in scored:
        if (category := record_category(record)) is not None:
            groups.setdefault(category, []).append(record)
    out: dict[str, float] = {}
    for name, group in groups.items():
        ref = sum(r["judge_scores"][0] for r in group)
        ans = sum(r["judge_scores"][1] for r in group)
        out["relative_score" + (f"/{name}" if name else "")] = 100.0 * ans / ref if ref else 0.0
    out["accuracy"] = sum(bool(r["correct"]) for r in scored) / len(scored)
    out["judged_items"] = float(len(scored))
    return out


def build_gpt4_relative_score(config: GPT4RelativeScoreConfig) -> RelativeScoreJudge:
    """LLaVA-Bench: a judge model scores answer vs reference (1-10); 100 x sum ratio; needs an API.

    The judge (GPT-4 in LLaVA) is reached through an OpenAI-compatible chat API.
    """
    base_url = config.base_url or next((os.environ[e] for e in BASE_URL_ENVS if os.environ.get(e)), None)
    api_key = os.environ.get(config.api_key_env) or None
    if base_url is None and api_key is None:
        raise AblateError(
            "evaluator gpt4_relative_score needs a judge model behind an OpenAI-compatible chat API, and none "
            f"is configured: set {config.api_key_env} (for api.openai.com), or ABLATE_JUDGE_BASE_URL / "
            "OPENAI_BASE_URL (e.g. a local vLLM server), or eval.evaluator.base_url in the recipe. "
            "This metric cannot be computed offline."
        )
    return RelativeScoreJudge(config, base_url or DEFAULT_BASE_URL, api_key)

