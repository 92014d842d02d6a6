"""Models swapped by name in config: `@register_model("name")` fills the registry, `create_model` reads it.

Sequence models (models/bilstm.py) and the baselines (models/baselines.py) share this one registry.
This module imports no model: `models/__init__.py` imports the model modules, whose decorators fill
it (as timm does), so importing anything from `models` fills the registry and nothing imports in a loop.
"""
from __future__ import annotations

from typing import Any, Callable

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable:
    def add(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = factory
        return factory
    return add


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model(name: str) -> Callable[..., Any]:
    """The factory registered as `name`; its attributes `inputs` (frames | tokens) and `kind`
    (sequence | baseline) tell the runner what to load and how to train it."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **cfg: Any) -> Any:
    return get_model(name)(**cfg)

