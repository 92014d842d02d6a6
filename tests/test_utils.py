from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from utils.config import ConfigError, load_config
from utils.io import atomic_path, fingerprint, save_json
from utils.runs import RunDirError, open_run_dir


@dataclass
class Inner:
    window: int = 10


@dataclass
class Cfg:
    out: str = "runs/x"
    k: int = 1000
    dims: list = field(default_factory=lambda: [25, 50])
    inner: Inner = field(default_factory=Inner)


def test_overrides_and_yaml_layers(tmp_path):
    yaml = tmp_path / "d.yaml"
    yaml.write_text("k: 200\ninner:\n  window: 5\n")
    cfg = load_config(Cfg, ["inner.window=3", "dims=[1,2,3]"], yaml)
    assert cfg.k == 200 and cfg.inner.window == 3 and list(cfg.dims) == [1, 2, 3]


def test_unknown_key_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="windw"):
        load_config(Cfg, ["inner.windw=3"])
    yaml = tmp_path / "bad.yaml"
    yaml.write_text("kk: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*kk"):
        load_config(Cfg, [f"config={yaml}"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="k"):
        load_config(Cfg, ["k=many"])


def test_not_key_value_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Cfg, ["k"])


def test_run_dir_refuses_a_different_config(tmp_path):
    a = OmegaConf.create({"k": 1, "device": "cpu"})
    open_run_dir(tmp_path / "r", a)
    open_run_dir(tmp_path / "r", OmegaConf.create({"k": 3, "device": "cpu"}))   # nothing written yet: a fixed config
    (tmp_path / "r" / "result.pt").write_bytes(b"")
    open_run_dir(tmp_path / "r", OmegaConf.create({"k": 3, "device": "cuda"}))  # device may change
    with pytest.raises(RunDirError, match=r"k: 3 -> 2"):
        open_run_dir(tmp_path / "r", OmegaConf.create({"k": 2, "device": "cpu"}))


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    target = tmp_path / "a.json"
    save_json({"v": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [target]


def test_fingerprint_sees_values_dtype_and_shape():
    a = np.arange(6, dtype=np.float32)
    assert fingerprint(a) == fingerprint(torch.arange(6, dtype=torch.float32))
    assert fingerprint(a) != fingerprint(a.reshape(2, 3))
    assert fingerprint(a) != fingerprint(a.astype(np.float64))
    b = a.copy(); b[3] += 1
    assert fingerprint(a) != fingerprint(b)
