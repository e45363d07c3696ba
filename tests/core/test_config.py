"""Configuration: params.yaml is the one home of every value; the models only type and check it."""

import pytest
import yaml

from mnist_mlops.core.config import Section, TrainConfig, load_params
from mnist_mlops.core.errors import UserError
from support import ROOT

SECTIONS = tuple(Section.__subclasses__())  # every section model config.py defines


def test_every_section_of_params_yaml_builds_and_has_a_model(repo_params):
    assert sorted(repo_params) == sorted(cls.SECTION for cls in SECTIONS)
    for cls in SECTIONS:
        # Every value comes from the file: the models carry no defaults of their own.
        assert cls.from_params(repo_params).model_dump(mode="json") == repo_params[cls.SECTION]
        assert all(f.is_required() for f in cls.model_fields.values()), cls


def test_params_best_lists_only_what_differs(repo_params):
    overlay = yaml.safe_load((ROOT / "bench/params-best.yaml").read_text())
    assert list(overlay) == ["train"]
    same = {k for k, v in overlay["train"].items() if repo_params["train"][k] == v}
    assert not same, f"bench/params-best.yaml repeats params.yaml's {sorted(same)}"
    best = TrainConfig.from_params(
        load_params(ROOT / "params.yaml", ROOT / "bench/params-best.yaml")
    )
    assert best.hidden == (1024, 1024, 1024) and best.batch_norm
    assert best.lr == TrainConfig.from_params(repo_params).lr  # not in the overlay: params.yaml's


def test_replace_validates_and_copies(repo_params):
    cfg = TrainConfig.from_params(repo_params)
    assert (
        cfg.replace(max_epochs=1).max_epochs == 1
        and cfg.max_epochs == repo_params["train"]["max_epochs"]
    )
    with pytest.raises(UserError, match="train.lr: Input should be greater than 0"):
        cfg.replace(lr=-1)


def test_load_params_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match="mapping of sections"):
        load_params(tmp_path / "list.yaml")


def test_config_rejects_unknown_and_bad_values(repo_params):
    def build(**overrides):
        return TrainConfig.from_params(repo_params, **overrides)

    with pytest.raises(UserError, match="unknown key train.lrr"):
        build(lrr=0.1)
    with pytest.raises(UserError, match="train.optimizer: Input should be 'sgd'.*'lbfgs'"):
        build(optimizer="lbfgs")
    with pytest.raises(UserError, match="train.max_epochs: .*valid integer.*2.5"):
        build(max_epochs=2.5)
    with pytest.raises(UserError, match="train.hidden"):
        build(hidden=[])
    with pytest.raises(UserError, match="train.lr is missing"):
        TrainConfig.from_params(
            {"train": {k: v for k, v in repo_params["train"].items() if k != "lr"}}
        )
    for bad in ({"lrr": 0.1}, {"optimizer": "lbfgs"}, {"dropout": 1.5}):
        with pytest.raises(UserError) as err:
            build(**bad)
        assert "\n" not in str(err.value)  # one line for the CLI
    cfg = build(lr="1e-2", hidden=[8], devices=1)  # `dvc exp run -S` hands over strings and ints
    assert (cfg.lr, cfg.hidden, cfg.devices) == (0.01, (8,), "1")
    with pytest.raises(Exception, match="frozen"):
        cfg.lr = 0.5
