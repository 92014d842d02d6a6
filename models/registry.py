"""Models swapped by name in config: `@register_model("name")` fills the registry, `create_model` reads it.

Sequence models (models/bilstm.py) and the baselines (models/baselines.py) share this one registry.
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
    _load_all()
    return sorted(_REGISTRY)


def get_model(name: str) -> Callable[..., Any]:
    """The factory registered as `name`; its attributes `inputs` (frames | tokens) and `kind`
    (sequence | baseline) tell the runner what to load and how to train it."""
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **cfg: Any) -> Any:
    return get_model(name)(**cfg)


def _load_all() -> None:
    # importing the model modules runs their @register_model decorators
    import models.baselines  # noqa: F401
    import models.bilstm  # noqa: F401
