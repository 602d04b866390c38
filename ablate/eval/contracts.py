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


EVALUATOR_NEEDS = ("an evaluator needs judge, score, check_answer_format, metric_prefix and benchmark_prefix "
                   "(subclass ablate.eval.EvaluatorBase for the defaults)")


def evaluator_problem(evaluator: Any, name: str) -> str | None:
    """Why what evaluator `name` built is not an `Evaluator` (the members it lacks), or None."""
    missing = _missing_members(evaluator)
    if not missing:
        return None
    return f"evaluator {name!r} built a {type(evaluator).__name__} without {', '.join(missing)}; {EVALUATOR_NEEDS}"


def _missing_members(evaluator: Any) -> list[str]:
    return [m for m in EVALUATOR_MEMBERS if not hasattr(evaluator, m)]


def evaluator_members_problem(evaluator: Any, entry: Any = None) -> str | None:
    """The members an evaluator lacks, as a sentence, or None (the registry's evaluator contract)."""
    missing = _missing_members(evaluator)
    return f"it lacks {', '.join(missing)}; {EVALUATOR_NEEDS}" if missing else None


def answer_format_problem(built: Any, entry: Any = None) -> str | None:
    """Why what an answer_format builder returned is not an `AnswerFormat`, or None."""
    if not isinstance(getattr(built, "key", None), str) or getattr(built, "target", None) not in ("letter", "text") \
            or not isinstance(getattr(built, "bare_answer", None), bool):
        return "an answer format has key (str), target ('letter' or 'text') and bare_answer (bool)"
    return None


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


def checked_metrics(metrics: Any, evaluator: Any) -> dict[str, float]:
    """`evaluator.score`'s result as {name: float}; an AblateError naming the evaluator's class
    when it is not a mapping of names to finite numbers (it would be logged, compared and
    reported as if it were a score)."""
    import math
    from numbers import Real

    from ablate.errors import AblateError

    who = f"evaluator {type(evaluator).__module__}.{type(evaluator).__qualname__}"
    if not isinstance(metrics, dict) or not metrics:
        raise AblateError(f"{who}: score() must return a non-empty dict of metric name -> number, got {metrics!r:.200}")
    checked = {}
    for name, value in metrics.items():
        number = value.item() if hasattr(value, "item") and not isinstance(value, Real) else value  # numpy/torch scalars
        if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, Real) \
                or not math.isfinite(number):
            raise AblateError(f"{who}: score() returned {name!r}: {value!r:.200}; every metric must be a finite "
                              "number under a str name")
        checked[name] = float(number)
    return checked
