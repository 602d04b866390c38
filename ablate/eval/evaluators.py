"""Evaluators."""


def register(registries) -> None:
    pass
