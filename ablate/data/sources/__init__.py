"""data/sources (filled in by its owner)."""


def register(registries) -> None:
    pass
