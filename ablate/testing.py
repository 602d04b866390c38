"""Conformance checks for plugin authors: does my component honour ablate's contract?

    from ablate.testing import assert_connector_conforms

    def test_my_connector():
        assert_connector_conforms("my_connector", {"some_option": 3})

`check_connector` runs every check and returns a `ConformanceReport` (inspect `.ok` and
`.failures`); `assert_connector_conforms` does the same and raises AssertionError listing
every failure. The contract itself is in `ablate.components.contracts`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ablate.registry import Entry, registries

DTYPES = ("float32", "bfloat16")


@dataclass
class ConformanceReport:
    connector: str
    config: dict[str, Any]
    in_dim: int
    out_dim: int
    num_input_tokens: int
    batch: int
    num_output_tokens: int | None = None
    num_parameters: int = 0
    num_trainable: int = 0
    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> "ConformanceReport":
        if self.failures:
            raise AssertionError(str(self))
        return self

    def __str__(self) -> str:
        head = (
            f"connector {self.connector!r} with config {self.config} "
            f"(in_dim={self.in_dim}, out_dim={self.out_dim}, num_input_tokens={self.num_input_tokens}, "
            f"batch={self.batch}): "
        )
        if self.ok:
            return head + f"conforms ({len(self.passed)} checks: {', '.join(self.passed)})"
        lines = [head + f"{len(self.failures)} of {len(self.failures) + len(self.passed)} checks failed"]
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


def check_connector(
    name_or_entry: str | Entry,
    config: dict[str, Any] | None = None,
    *,
    in_dim: int = 32,
    out_dim: int = 48,
    num_input_tokens: int = 16,
    batch: int = 2,
    seed: int = 0,
) -> ConformanceReport:
    """Build the connector and check it against the contract; never raises for a failed check.

    Checks: it builds an nn.Module with an int `num_output_tokens`; output shape is
    [batch, num_output_tokens, out_dim] and finite; gradients reach every trainable parameter
    and the input; output dtype follows input dtype (float32, and bfloat16 with the module cast
    to bfloat16); eval mode is deterministic and batch items do not affect each other; the
    state dict loads into a fresh build and reproduces the outputs.
    """
    import torch

    entry = registries().connector.get(name_or_entry) if isinstance(name_or_entry, str) else name_or_entry
    report = ConformanceReport(entry.name, dict(config or {}), in_dim, out_dim, num_input_tokens, batch)
    context = dict(in_dim=in_dim, out_dim=out_dim, num_input_tokens=num_input_tokens)

    def build(build_seed: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(build_seed)
            return entry.build(report.config, **context)

    module = _check_build(report, build, seed)
    if module is None:
        return report
    generator = torch.Generator().manual_seed(seed)
    subject = _Subject(module, build, seed, torch.randn(batch, num_input_tokens, in_dim, generator=generator),
                       generator, (batch, report.num_output_tokens, out_dim))
    if not _check_training_forward(report, subject):
        return report
    eval_output = _check_eval_mode(report, subject)
    _check_state_dict(report, subject, eval_output)
    _check_dtypes(report, subject)
    return report


@dataclass
class _Subject:
    """The built connector and what every check feeds it."""

    module: Any
    build: Any  # seed -> a fresh module
    seed: int
    features: Any  # [batch, num_input_tokens, in_dim] float32
    generator: Any
    expected: tuple[int, int, int]


def _check_build(report: ConformanceReport, build, seed: int):
    """The module, with `num_output_tokens` recorded in the report; None when it cannot be checked."""
    import torch

    try:
        module = build(seed)
    except Exception as exc:  # noqa: BLE001 - a broken builder is a finding, not a crash
        report.failures.append(f"build: raised {type(exc).__name__}: {exc}")
        return None
    if not isinstance(module, torch.nn.Module):
        report.failures.append(f"build: must return a torch.nn.Module, got {type(module).__name__}")
        return None
    tokens = getattr(module, "num_output_tokens", None)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        report.failures.append(f"num_output_tokens: must be a positive int attribute, got {tokens!r}")
        return None
    report.passed.append("build")
    report.num_output_tokens = tokens
    report.num_parameters = sum(p.numel() for p in module.parameters())
    report.num_trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return module


def _check_training_forward(report: ConformanceReport, subject: _Subject) -> bool:
    """float32 forward in train mode (shape, dtype, finite), then gradients; False: stop checking."""
    import torch

    subject.module.train()
    x = subject.features.clone().requires_grad_(True)
    try:
        out = subject.module(x)
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"forward: raised {type(exc).__name__}: {exc}")
        return False
    if _check_output(report, "shape/dtype float32", out, subject.expected, torch.float32):
        report.passed.append("shape/dtype float32")
    elif not isinstance(out, torch.Tensor):
        return False
    weights = torch.randn(out.shape, generator=subject.generator)  # a generic loss, not one with symmetries
    try:
        (out * weights).sum().backward()
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"gradients: backward raised {type(exc).__name__}: {exc}")
        return True
    problems = _gradient_problems(subject.module, x)
    if problems:
        report.failures.append("gradients: " + "; ".join(problems))
    else:
        report.passed.append("gradients")
    return True


def _gradient_problems(module, x) -> list[str]:
    import torch

    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    bad = [n for n, p in trainable if p.grad is not None and not torch.isfinite(p.grad).all()]
    problems = []
    if missing:
        problems.append(f"no gradient reaches {len(missing)} trainable parameter(s): {_names(missing)}")
    if bad:
        problems.append(f"non-finite gradient in {_names(bad)}")
    if x.grad is None or not x.grad.abs().sum() > 0:
        problems.append("no gradient reaches the input features (is the output detached?)")
    return problems


def _check_eval_mode(report: ConformanceReport, subject: _Subject):
    """Eval mode: the same input gives the same output; batch items are independent. The output."""
    import torch

    module, features = subject.module, subject.features
    module.eval()
    with torch.no_grad():
        first, second = module(features), module(features)
        if not torch.equal(first, second):
            diff = (first - second).abs().max().item()
            report.failures.append(f"determinism: two eval-mode forwards of the same input differ (max {diff:.3g})")
        else:
            report.passed.append("determinism")
        if features.shape[0] > 1:
            alone = module(features[:1])
            if alone.shape != first[:1].shape or not torch.allclose(alone, first[:1], atol=1e-5, rtol=1e-4):
                report.failures.append(
                    "batch independence: the first item's output changes when other items share its batch"
                )
            else:
                report.passed.append("batch independence")
    return first


def _check_state_dict(report: ConformanceReport, subject: _Subject, eval_output) -> None:
    """The state dict is the whole state: a fresh build loading it gives the same outputs."""
    import torch

    try:
        fresh = subject.build(subject.seed + 1)
        fresh.load_state_dict(subject.module.state_dict())
        fresh.eval()
        with torch.no_grad():
            same = torch.equal(fresh(subject.features), eval_output)
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"state dict: reloading into a fresh build raised {type(exc).__name__}: {exc}")
        return
    if same:
        report.passed.append("state dict")
    else:
        report.failures.append("state dict: a fresh build with the saved state dict gives different outputs")


def _check_dtypes(report: ConformanceReport, subject: _Subject) -> None:
    """The output dtype follows the input dtype, with the module cast to it."""
    import torch

    for name in DTYPES[1:]:
        dtype = getattr(torch, name)
        try:
            cast = copy.deepcopy(subject.module).to(dtype).eval()
            with torch.no_grad():
                out = cast(subject.features.to(dtype))
        except Exception as exc:  # noqa: BLE001
            report.failures.append(f"dtype {name}: forward raised {type(exc).__name__}: {exc}")
            continue
        if _check_output(report, f"dtype {name}", out, subject.expected, dtype):
            report.passed.append(f"dtype {name}")


def assert_connector_conforms(name_or_entry: str | Entry, config: dict[str, Any] | None = None, **kwargs: Any) -> ConformanceReport:
    """`check_connector`, raising AssertionError that lists every failed check."""
    __tracebackhide__ = True  # pytest shows the caller's line
    return check_connector(name_or_entry, config, **kwargs).raise_for_failures()


def _check_output(report: ConformanceReport, check: str, out: Any, expected: tuple[int, ...], dtype: Any) -> bool:
    import torch

    if not isinstance(out, torch.Tensor):
        report.failures.append(f"{check}: forward must return a tensor, got {type(out).__name__}")
        return False
    problems = []
    if tuple(out.shape) != expected:
        problems.append(
            f"output shape {tuple(out.shape)} != {expected} [batch, num_output_tokens, out_dim]"
        )
    if out.dtype != dtype:
        problems.append(f"output dtype {out.dtype} != input dtype {dtype}")
    if out.is_floating_point() and not torch.isfinite(out).all():
        problems.append("output has NaN or inf")
    if problems:
        report.failures.append(f"{check}: " + "; ".join(problems))
        return False
    return True


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
