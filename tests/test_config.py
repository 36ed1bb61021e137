import dataclasses
import tomllib

import pytest

from recsys_dist.config import JobConfig, merge, parse_override
from recsys_dist.errors import ConfigError
from tests.conftest import ROOT


def test_config_quickstart_file_equals_builtin_defaults():
    data = tomllib.loads((ROOT / "conf" / "quickstart.toml").read_text())
    assert JobConfig.from_mapping(data) == JobConfig()


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "conf").glob("*.toml")))
def test_config_shipped_files_validate(name):
    JobConfig.from_mapping(tomllib.loads((ROOT / "conf" / name).read_text()), origin=name)


def test_config_round_trips_through_mapping():
    cfg = JobConfig.from_mapping({"split": {"method": "kfold", "fold": "3", "n_folds": 4}, "ingest": {"scale": [1, 5]}})
    assert JobConfig.from_mapping(cfg.to_mapping()) == cfg
    assert cfg.ingest.scale == [1.0, 5.0]


@pytest.mark.parametrize(
    "mapping, key",
    [
        ({"split": {"metod": "random"}}, "split.metod"),
        ({"nosuch": {}}, "nosuch"),
        ({"split": {"method": "bogus"}}, "split.method"),
        ({"split": {"test_fraction": 1.5}}, "split.test_fraction"),
        ({"split": {"seed": "abc"}}, "split.seed"),
        ({"synth": {"rank": 0}}, "synth.rank"),
        ({"synth": {"noise": -1.0}}, "synth.noise"),
        ({"ingest": {"partitions": -2}}, "ingest.partitions"),
        ({"ingest": {"scale": [5, 1]}}, "ingest.scale"),
        ({"split": {"method": "folds", "fold": "u9"}}, "split.fold"),
        ({"split": {"method": "kfold", "fold": "5", "n_folds": 5}}, "split.fold"),
        ({"synth": {"shape": "custom"}}, "synth.shape"),
        ({"ingest": {"delimiter": "::"}}, "ingest.delimiter"),
        ({"model": {"gather_dtype": "bfloat16"}}, "model.gather_dtype"),
        ({"model": {"gather_dtype": "float16", "solver": "cholesky"}}, "model.gather_dtype"),
        ({"model": {"gather_dtype": "float16", "kind": "implicit_als"}}, "model.gather_dtype"),
    ],
)
def test_config_rejects_bad_keys_and_values_naming_the_key(mapping, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        JobConfig.from_mapping(mapping)


def test_config_override_values_are_toml_literals_or_strings():
    assert parse_override("split.test_fraction=0.1") == ("split", "test_fraction", 0.1)
    assert parse_override("ingest.scale=[1, 5]") == ("ingest", "scale", [1, 5])
    dated = JobConfig.from_mapping(merge({}, [parse_override("split.cutoff=2001-01-01")]))
    assert dated.split.cutoff == "2001-01-01"
    assert parse_override("ingest.source=/data/x.zip") == ("ingest", "source", "/data/x.zip")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("noequals")
    merged = merge({"split": {"seed": 1}}, [("split", "seed", 2), ("run", "out", "x")])
    cfg = JobConfig.from_mapping(merged)
    assert cfg.split.seed == 2 and cfg.run.out == "x"


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        JobConfig().split.seed = 3  # type: ignore[misc]


def test_config_auto_solver_is_cg_for_the_kinds_with_a_cg_kernel():
    from recsys_dist.config import ModelConfig

    for rank in (4, 10, 64):
        assert ModelConfig(rank=rank).effective_solver() == "cg"
        assert ModelConfig(rank=rank, kind="implicit_als").effective_solver() == "cg"
    assert ModelConfig(rank=64, solver="cholesky").effective_solver() == "cholesky"
    for kind in ("bias", "genre_als", "bpmf"):
        assert ModelConfig(rank=10, kind=kind).effective_solver() == "cholesky"


def test_config_bpr_takes_its_own_defaults_for_keys_left_out():
    from recsys_dist.config import JobConfig

    bpr = JobConfig.from_mapping({"model": {"kind": "bpr"}}).model
    assert (bpr.reg, bpr.bias_reg, bpr.n_iter) == (0.01, 0.01, 20)
    assert JobConfig.from_mapping({"model": {"kind": "bpr", "reg": 0.05}}).model.reg == 0.05  # set keys win
    assert JobConfig.from_mapping({"model": {"kind": "als"}}).model.reg == 0.1
