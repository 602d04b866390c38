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

    # --- it builds, and says how many tokens it makes
    try:
        module = build(seed)
    except Exception as exc:  # noqa: BLE001 - a broken builder is a finding, not a crash
        report.failures.append(f"build: raised {type(exc).__name__}: {exc}")
        return report
    if not isinstance(module, torch.nn.Module):
        report.failures.append(f"build: must return a torch.nn.Module, got {type(module).__name__}")
        return report
    tokens = getattr(module, "num_output_tokens", None)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        report.failures.append(f"num_output_tokens: must be a positive int attribute, got {tokens!r}")
        return report
    report.passed.append("build")
    report.num_output_tokens = tokens
    report.num_parameters = sum(p.numel() for p in module.parameters())
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    report.num_trainable = sum(p.numel() for _, p in trainable)
    expected = (batch, tokens, out_dim)

    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, num_input_tokens, in_dim, generator=generator)

    # --- float32 forward in train mode: shape, dtype, finite values
    module.train()
    x = features.clone().requires_grad_(True)
    try:
        out = module(x)
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"forward: raised {type(exc).__name__}: {exc}")
        return report
    if _check_output(report, "shape/dtype float32", out, expected, torch.float32):
        report.passed.append("shape/dtype float32")
    elif not isinstance(out, torch.Tensor):
        return report

    # --- gradients reach every trainable parameter and the input
    weights = torch.randn(out.shape, generator=generator)  # a generic loss, not one with symmetries
    try:
        (out * weights).sum().backward()
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"gradients: backward raised {type(exc).__name__}: {exc}")
    else:
        missing = [n for n, p in trainable if p.grad is None]
        bad = [n for n, p in trainable if p.grad is not None and not torch.isfinite(p.grad).all()]
        problems = []
        if missing:
            problems.append(f"no gradient reaches {len(missing)} trainable parameter(s): {_names(missing)}")
        if bad:
            problems.append(f"non-finite gradient in {_names(bad)}")
        if x.grad is None or not x.grad.abs().sum() > 0:
            problems.append("no gradient reaches the input features (is the output detached?)")
        if problems:
            report.failures.append("gradients: " + "; ".join(problems))
        else:
            report.passed.append("gradients")

    # --- eval mode: same input, same output; batch items independent
    module.eval()
    with torch.no_grad():
        first, second = module(features), module(features)
        if not torch.equal(first, second):
            diff = (first - second).abs().max().item()
            report.failures.append(f"determinism: two eval-mode forwards of the same input differ (max {diff:.3g})")
        else:
            report.passed.append("determinism")
        if batch > 1:
            alone = module(features[:1])
            if alone.shape != first[:1].shape or not torch.allclose(alone, first[:1], atol=1e-5, rtol=1e-4):
                report.failures.append(
                    "batch independence: the first item's output changes when other items share its batch"
                )
            else:
                report.passed.append("batch independence")

    # --- the state dict is the whole state: a fresh build loading it gives the same outputs
    try:
        fresh = build(seed + 1)
        fresh.load_state_dict(module.state_dict())
        fresh.eval()
        with torch.no_grad():
            same = torch.equal(fresh(features), first)
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"state dict: reloading into a fresh build raised {type(exc).__name__}: {exc}")
    else:
        if same:
            report.passed.append("state dict")
        else:
            report.failures.append("state dict: a fresh build with the saved state dict gives different outputs")

    # --- output dtype follows input dtype with the module cast to it
    for name in DTYPES[1:]:
        dtype = getattr(torch, name)
        try:
            cast = copy.deepcopy(module).to(dtype).eval()
            with torch.no_grad():
                out = cast(features.to(dtype))
        except Exception as exc:  # noqa: BLE001
            report.failures.append(f"dtype {name}: forward raised {type(exc).__name__}: {exc}")
            continue
        if _check_output(report, f"dtype {name}", out, expected, dtype):
            report.passed.append(f"dtype {name}")
    return report


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
