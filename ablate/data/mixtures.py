"""Mixtures."""


def register(registries) -> None:
    pass
