"""What an evaluator and the answer format of the data it scores promise each other.

An `Evaluator` (what an `evaluator` registry builder returns) judges one record at a time and
scores a list of them; the run logs its scores as `<metric_prefix>/<name>` and, for a
benchmark with its own column names, also as `<benchmark_prefix>/<name>`. Before anything
trains, the recipe asks the built evaluator whether it can score answers in the recipe's
answer format (`check_answer_format`), which it decides from the format's facts alone:

  key          the registry name, e.g. "QCM-LEA"
  target       "letter": the answer is the option's letter; "text": the option's text
  bare_answer  the target turn is the answer alone ("A", "a cat"), with no reasoning or
               "The answer is X." around it

Records are `{"id", "prompt", "prediction", "answer", "meta"}`; `judge` returns a copy with
`correct` (a bool, or a number in [0, 1] for partial credit) and whatever it extracted.

An evaluator of multiple-choice items may also name an item's answer options from its meta
(`answer_options`, the replies a model trained on the data gives for each option), which
`eval.option_scoring` scores by log-likelihood (`ablate.eval.options`); the base class names none.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Protocol, runtime_checkable


@runtime_checkable
class AnswerFormat(Protocol):
    key: str
    target: Literal["letter", "text"]
    bare_answer: bool


@runtime_checkable
class Evaluator(Protocol):
    metric_prefix: str
    benchmark_prefix: str | None

    def judge(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def score(self, records: Iterable[dict[str, Any]]) -> dict[str, float]: ...

    def check_answer_format(self, answer_format: AnswerFormat) -> str | None:
        """A sentence saying why this evaluator cannot score answers in `answer_format`, or None."""


EVALUATOR_MEMBERS = ("judge", "score", "check_answer_format", "metric_prefix", "benchmark_prefix")


def evaluator_problem(evaluator: Any, name: str) -> str | None:
    """Why what evaluator `name` built is not an `Evaluator` (the members it lacks), or None."""
    missing = [m for m in EVALUATOR_MEMBERS if not hasattr(evaluator, m)]
    if not missing:
        return None
    return (f"evaluator {name!r} built a {type(evaluator).__name__} without {', '.join(missing)}; an evaluator "
            "needs judge, score, check_answer_format, metric_prefix and benchmark_prefix "
            "(subclass ablate.eval.EvaluatorBase for the defaults)")


class EvaluatorBase:
    """Defaults for built-in and plugin evaluators: logged under eval/*, any answer format."""

    metric_prefix: str = "eval"
    benchmark_prefix: str | None = None

    def check_answer_format(self, answer_format: AnswerFormat) -> str | None:
        return None

    def answer_options(self, meta: dict[str, Any]) -> list[str] | None:
        """The replies that pick each option of a multiple-choice item, or None (not multiple choice)."""
        return None

    def judged(self, records: Iterable[dict[str, Any]], name: str, done_key: str = "correct") -> list[dict[str, Any]]:
        """The records, each judged unless it carries `done_key` already (judged during generation)."""
        out = [r if done_key in r else self.judge(r) for r in records]  # type: ignore[attr-defined]
        if not out:
            from ablate.errors import AblateError

            raise AblateError(f"{name} evaluator: no records to score")
        return out
