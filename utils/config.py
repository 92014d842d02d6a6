"""One mechanism for every script's config: a dataclass schema, YAML defaults, `key=value` overrides.

    cfg = load_config(ClusterConfig, sys.argv[1:], "configs/cluster.yaml")

Order of precedence (last wins): the schema's defaults, the YAML defaults file, a user YAML
given as `config=FILE`, then `key=value` pairs. An unknown key or a value of the wrong type raises
`ConfigError` naming the key and where it came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

# every script's defaults: configs/<script>.yaml at the repository's top
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A config key or value that the script's schema does not accept."""


def merge_layer(base: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    """`base` with `layer` merged over it; a key or value `base`'s schema refuses is a ConfigError naming `source`."""
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        reason = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(f"{source}: bad config key '{key}': {reason}") from None


def load_yaml_layer(path: str | Path, source: str) -> DictConfig:
    """A YAML file of config keys; malformed YAML is a ConfigError naming the file and the line."""
    if not Path(path).is_file():
        raise ConfigError(f"{source}: no such file" if not Path(path).exists() else f"{source}: is a folder, not a YAML file")
    try:
        layer = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{source}: malformed YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{source}: expected a YAML mapping of config keys")
    return layer


def _dotlist(pairs: list[str]) -> DictConfig:
    try:
        return OmegaConf.from_dotlist(pairs)
    except (yaml.YAMLError, OmegaConfBaseException):
        for pair in pairs:       # find the one that does not parse, to name it
            try:
                OmegaConf.from_dotlist([pair])
            except (yaml.YAMLError, OmegaConfBaseException):
                raise ConfigError(f"command line: '{pair}': the value is not valid YAML "
                                  f"(quote it, or close its brackets)") from None
        raise


def parse_overrides(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Split `config=FILE` from the `key=value` pairs; anything else is an error."""
    user_yaml, pairs = None, []
    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise ConfigError(f"command line: '{arg}' is not of the form key=value")
        if arg.startswith("config="):
            user_yaml = arg.split("=", 1)[1]
        else:
            pairs.append(arg)
    return user_yaml, pairs


Layer = tuple[str, Any]  # (where it comes from, a dict or DictConfig): errors name the source


def load_config(schema: type, argv: Sequence[str] = (), defaults: str | Path | None = None, *,
                before: Sequence[Layer] = (), after: Sequence[Layer] = ()) -> DictConfig:
    """schema <- defaults YAML <- config=FILE <- `before` layers <- key=value pairs <- `after` layers.

    The extra layers let a sweep put its common settings under the command line and each row's own
    settings over it.
    """
    cfg = OmegaConf.structured(schema)
    if defaults is not None and Path(defaults).exists():
        cfg = merge_layer(cfg, load_yaml_layer(defaults, str(defaults)), str(defaults))
    user_yaml, pairs = parse_overrides(argv)
    if user_yaml is not None:
        cfg = merge_layer(cfg, load_yaml_layer(user_yaml, f"config={user_yaml}"), user_yaml)
    for source, layer in [*before, ("command line", _dotlist(pairs)), *after]:
        cfg = merge_layer(cfg, layer if isinstance(layer, DictConfig) else OmegaConf.create(layer), source)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


# --- range checks, declared next to each schema --------------------------------------------------

def at_least(low: float) -> tuple:
    return (lambda v: v >= low), f">= {low}"


def above(low: float) -> tuple:
    return (lambda v: v > low), f"> {low}"


def between(low: float, high: float) -> tuple:
    return (lambda v: low <= v <= high), f"in [{low}, {high}]"


def one_of(*allowed: Any) -> tuple:
    return (lambda v: v in allowed), f"one of {', '.join(map(str, allowed))}"


def each(rule: tuple) -> tuple:
    ok, what = rule
    return (lambda v: all(ok(x) for x in v)), f"a list of values {what}"


def non_empty() -> tuple:
    return (lambda v: len(v) > 0), "not empty"


def check_ranges(cfg: Any, rules: dict[str, tuple], prefix: str = "") -> None:
    """`rules`: key -> a rule above (a dotted key reaches into a section). A value outside its range is
    a ConfigError naming the key, before anything is written."""
    for key, (ok, what) in rules.items():
        value = cfg
        for part in key.split("."):
            value = value[part] if isinstance(value, (dict, DictConfig)) else getattr(value, part)
        if value is not None and not ok(value):
            shown = list(value) if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else value
            raise ConfigError(f"{prefix}{key}={shown}: must be {what}")
