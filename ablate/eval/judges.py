"""LLM-judged evaluators (registry `evaluator`), for metrics that need a judge model.

`gpt4_relative_score`: LLaVA-Bench scored as LLaVA's review and summary scripts score it
(llava/eval/eval_gpt_review_visual.py, eval_gpt_review_bench.py, summarize_gpt_review.py).
A judge model behind an OpenAI-compatible chat API gets a system message and one user message:
the image's text context (captions and boxes), the question, answer 1 (the reference: GPT-4's
answer) and answer 2 (the model's), each in LLaVA's bracketed sections, then the per-category
rule prompt from LLaVA's rule.json. The rule comes with each record (`meta.judge_rule`, put there
by the `llava_bench` source or `ablate data prepare llava-bench-coco` from the user's copy of the
rules file); a record without one (data that is not LLaVA-Bench) gets `DEFAULT_RULE`.

Scores as LLaVA parses them: the reply's first line, commas read as spaces, split on single
spaces into exactly two numbers; anything else is a failure, scored [-1, -1] and, as in LLaVA's
summary, kept in the means (and counted in `judge_failures`). Per category and overall:
relative_score = 100 x mean(model) / mean(reference), with LLaVA's rounding (means to 3
decimals, the ratio to 1), plus `reference_score`/`model_score` (10 x the means, as LLaVA prints
them). `accuracy` is the share of items where the model scored at least the reference.

Every reply is cached on disk (ablate.eval.judge_cache, default `$ABLATE_HOME/judge_cache`),
keyed by the whole request, so re-runs and reports never pay twice.

The endpoint comes from the config (`base_url`, `api_key_env`) or the environment
(ABLATE_JUDGE_BASE_URL or OPENAI_BASE_URL; OPENAI_API_KEY). Without either, building the
evaluator raises an AblateError saying what to set: it cannot run offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from pydantic import Field

from ablate.components.contracts import IMAGE_TOKEN
from ablate.errors import AblateError
from ablate.eval.chat_api import ChatEndpoint
from ablate.eval.contracts import EvaluatorBase
from ablate.eval.judge_cache import JudgeCache, cached_reply
from ablate.registry import ComponentConfig

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENVS = ("ABLATE_JUDGE_BASE_URL", "OPENAI_BASE_URL")
FAILED = [-1.0, -1.0]  # LLaVA's score pair for a reply it cannot parse

# LLaVA's review scripts send this one-sentence system message with every request.
# ablate's own wording. LLaVA's eval script sends a one-sentence system message of its own; to
# send exactly LLaVA's request, set `system_prompt` to it from your copy of LLaVA's code, as the
# rules file is read from your copy of rule.json.
DEFAULT_SYSTEM_PROMPT = "You carefully and fairly grade how well each answer serves the question."
DEFAULT_RULE = {
    "role": "Assistant",
    "prompt": "You are shown a text description of an image, a question about it and two assistants' answers. "
              "Rate each answer's helpfulness, relevance, accuracy and level of detail with an overall score "
              "from 1 to 10, higher being better. Write only the two scores, Assistant 1's then Assistant 2's, "
              "separated by a space, on the first line. Then explain your rating, without letting the order of "
              "the answers or their length sway you.",
}


class GPT4RelativeScoreConfig(ComponentConfig):
    model: str = Field("gpt-4-0314", description="judge model name at the endpoint (LLaVA used GPT-4-0314)")
    base_url: str | None = Field(
        None, description="OpenAI-compatible API root, e.g. http://localhost:8000/v1 "
        "(default: $ABLATE_JUDGE_BASE_URL, $OPENAI_BASE_URL, else api.openai.com with a key)",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    temperature: float = Field(0.2, ge=0, description="LLaVA's review scripts use 0.2")
    max_tokens: int = Field(1024, gt=0, description="LLaVA's review scripts use 1024")
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="the judge's system message (set LLaVA's own "
                               "from your copy of its eval script to send exactly its request)")
    cache: bool = Field(True, description="keep every judge reply on disk and reuse it for the same request")
    cache_dir: str | None = Field(None, description="where the replies are kept (default: $ABLATE_HOME/judge_cache)")
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0, description="retries on network errors, 429 and 5xx")
    retry_wait_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each retry, at most 30 s")


class RelativeScoreJudge(EvaluatorBase):
    def __init__(self, config: GPT4RelativeScoreConfig, base_url: str, api_key: str | None,
                 cache: JudgeCache | None = None):
        self.config, self.cache = config, cache
        self.endpoint = ChatEndpoint(base_url, api_key, config.timeout_s, config.retries, config.retry_wait_s,
                                     label="gpt4_relative_score")

    # --- the API ---------------------------------------------------------------------------

    def ask(self, messages: list[dict[str, str]]) -> str:
        """The judge's reply to `messages`: from the cache when this exact request was answered before."""
        request = {"model": self.config.model, "messages": messages,
                   "temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        return cached_reply(self.cache, self.endpoint, request)

    # --- the evaluator contract ------------------------------------------------------------

    def messages(self, record: dict[str, Any]) -> list[dict[str, str]]:
        """LLaVA's request for one record: the system message, then context, question, answers, rule."""
        meta = record.get("meta") or {}
        reference = record.get("answer")
        reference = reference[0] if isinstance(reference, (list, tuple)) and reference else reference
        question = meta.get("question") or str(record.get("prompt") or "").replace(IMAGE_TOKEN, "").strip()
        return [{"role": "system", "content": self.config.system_prompt},
                {"role": "user", "content": review_content(
                    meta.get("context") or meta.get("caption") or "(none given)", question, reference or "",
                    record.get("prediction") or "", meta.get("judge_rule") or DEFAULT_RULE)}]

    def judge(self, record: dict[str, Any]) -> dict[str, Any]:
        text = self.ask(self.messages(record))
        scores = parse_scores(text)
        out = {**record, "judge_review": text, "judge_failed": scores is None}
        if scores is None:
            return {**out, "judge_scores": list(FAILED), "correct": False}
        return {**out, "judge_scores": list(scores), "correct": scores[1] >= scores[0]}

    def score(self, records: Iterable[dict[str, Any]]) -> dict[str, float]:
        return relative_scores(self.judged(records, "gpt4_relative_score", done_key="judge_scores"))


def review_content(context: str, question: str, reference: str, prediction: str, rule: dict[str, str]) -> str:
    """The user message in the sections LLaVA's review scripts write (answer 1 is the reference)."""
    role = rule["role"]
    return (f"[Context]\n{context}\n\n[Question]\n{question}\n\n"
            f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{prediction}\n\n[End of {role} 2]\n\n[System]\n{rule['prompt']}\n\n")


def parse_scores(text: str) -> tuple[float, float] | None:
    """LLaVA's parse: the first line, commas as spaces, must split on single spaces into two numbers.

    So "8 7" and "8,7" parse; "8, 7" (three parts), " 8 7" and "8/10 7/10" do not, as in LLaVA.
    """
    parts = text.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def relative_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """LLaVA's summary: per category and over all, the mean score pair (failures as [-1, -1])."""
    from ablate.eval.evaluators import record_category

    if all(r.get("judge_failed") for r in records):
        raise AblateError("gpt4_relative_score: the judge scored no item (no reply began with a line of two scores)")
    groups: dict[str, list[list[float]]] = {"": []}
    for record in records:
        groups[""].append(record["judge_scores"])
        if (category := record_category(record)) is not None:
            groups.setdefault(category, []).append(record["judge_scores"])
    out: dict[str, float] = {}
    for name, pairs in groups.items():
        # plain sums, as numpy's mean over axis 0 adds row after row; rounded where LLaVA rounds
        reference = round(sum(p[0] for p in pairs) / len(pairs), 3)
        model = round(sum(p[1] for p in pairs) / len(pairs), 3)
        suffix = f"/{name}" if name else ""
        out["relative_score" + suffix] = round(model / reference * 100, 1) if reference else 0.0
        out["reference_score" + suffix] = round(reference * 10, 1)
        out["model_score" + suffix] = round(model * 10, 1)
    out["accuracy"] = sum(bool(r["correct"]) for r in records) / len(records)
    out["judged_items"] = float(len(records))
    out["judge_failures"] = float(sum(bool(r.get("judge_failed")) for r in records))
    return out


def build_gpt4_relative_score(config: GPT4RelativeScoreConfig) -> RelativeScoreJudge:
    """LLaVA-Bench as LLaVA scores it: a judge model rates reference and answer with rule.json's prompts.

    The judge (GPT-4 in LLaVA) is reached through an OpenAI-compatible chat API; replies are cached.
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
    return RelativeScoreJudge(config, base_url or DEFAULT_BASE_URL, api_key, judge_cache(config))


def judge_cache(config: GPT4RelativeScoreConfig) -> JudgeCache | None:
    return cache_at(config.cache_dir, "gpt4_relative_score") if config.cache else None


def cache_at(cache_dir: str | None, what: str) -> JudgeCache:
    """The judge cache in `cache_dir`, default $ABLATE_HOME/judge_cache (one cache for every judge)."""
    from ablate.paths import file_in_the_way
    from ablate.zoo import ablate_home

    root = Path(cache_dir).expanduser() if cache_dir else ablate_home() / "judge_cache"
    if (blocker := file_in_the_way(root)) is not None:
        raise AblateError(f"{what}: cache_dir {str(root)!r} cannot be a folder: {blocker} is a file")
    return JudgeCache(root)
