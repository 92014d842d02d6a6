"""Models swapped by name in config: `@register_model(...)` fills the registry, `get_model` reads it.

    @register_model("bilstm_au", config=BiLSTMConfig, inputs="frames", kind="sequence")
    def bilstm_au(*, hidden, ..., **context): ...

A model owns its config: `config` is the dataclass of its options, which becomes train.py's section
of the same name (training/config.py builds the schema from the registry), so adding a model touches
one file. `inputs` tells the runner what to load: `frames` (a frame corpus), `tokens` (a tokens file)
or `embeddings` (tokens plus pretrained vectors, read for the `d` in the model's config), or `images`
(face crops, faces.py). `kind` tells it how to train: `sequence` (gradient training of replicas),
`baseline` (fit on features) or `au_detector` (face images -> AU presence, trained by faces.py).

This module imports no model: `models/__init__.py` imports the model modules, whose decorators fill
it (as timm does), so importing anything from `models` fills the registry without an import loop.
"""
from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any, Callable

INPUTS = ("frames", "tokens", "embeddings", "images")
KINDS = ("sequence", "baseline", "au_detector")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., Any]
    config: type       # dataclass of the model's options
    inputs: str        # frames | tokens | embeddings
    kind: str          # sequence | baseline


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, config: type, inputs: str, kind: str) -> Callable:
    if inputs not in INPUTS or kind not in KINDS or not is_dataclass(config):
        raise ValueError(f"register_model({name!r}): inputs in {INPUTS}, kind in {KINDS}, config a dataclass")

    def add(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, config, inputs, kind)
        return factory
    return add


def known_models(*kinds: str) -> list[str]:
    """Registered names, all of them or only those of the given kinds."""
    return sorted(n for n, e in _REGISTRY.items() if not kinds or e.kind in kinds)


def get_model(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **cfg: Any) -> Any:
    return get_model(name).factory(**cfg)
