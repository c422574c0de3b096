"""A name -> builder registry, one instance per model family (generators, perceivers,
quality scorers, detectors), in the manner of timm's ``create_model``.

Each family module owns its own ``Registry`` and exposes ``create_<family>`` / ``list_<family>s``
on top of it; this class only holds the shared mechanics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class UnknownNameError(ValueError):
    """Raised when a registry is asked for a name it does not know; the message lists the known names."""


class Registry:
    """Maps names to builder callables.

    >>> detectors = Registry("detector")
    >>> @detectors.register("tiny")
    ... def build_tiny(**kw): ...
    >>> detectors.create("tiny")
    """

    def __init__(self, family: str):
        self.family = family
        self._builders: dict[str, Callable[..., Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``builder`` under ``name``; ``meta`` is free-form (e.g. a description)."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._builders[name] = builder
            self._meta[name] = dict(meta)
            return builder

        return decorator

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._builders)

    def meta(self, name: str) -> dict[str, Any]:
        self.check(name)
        return dict(self._meta[name])

    def check(self, name: str) -> None:
        """Raise ``UnknownNameError`` (listing the known names) unless ``name`` is registered."""
        if name not in self._builders:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.family} {name!r}; known {self.family}s: {known}")

    def get(self, name: str) -> Callable[..., Any]:
        self.check(name)
        return self._builders[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build the entry ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
