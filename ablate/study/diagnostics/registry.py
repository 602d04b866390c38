"""The registry of diagnostics: the generic exact-key registry, one instance for the study layer
(diagnostics run recipes and read MLflow, so they cannot live in the component registries)."""

from __future__ import annotations

from ablate.registry import Registry

_REGISTRY: Registry | None = None


def diagnostics() -> Registry:
    """The diagnostic registry, with the built-ins registered on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        from ablate.study.diagnostics import (answer_pieces, layer_probe, option_naming, plateau, stage_length,
                                              variant)

        registry = Registry("diagnostic")
        for module in (plateau, stage_length, layer_probe, option_naming, answer_pieces, variant):
            module.register(registry)
        _REGISTRY = registry
    return _REGISTRY
