"""A config is checked whole when it is read: a typo in any section fails before any
work, naming the file and the key path; `--set` overrides; paths resolve against the
config file's folder; a run records its config resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yt8mkit.config_files import ConfigError, apply_overrides
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.config import ZooConfig

CONFIG = {
    "name": "typos",
    "data": {"synth": {"videos": 60, "classes": 5}},
    "zoo": {"defaults": {"epochs": 1},
            "models": {"logistic": {"model": {"name": "logistic"}}},
            "centroids": {"c8": {"k": 8}},
            "derived": {"stats": {"features": "statistics",
                                  "model": {"name": "logistic"}}},
            "neighbours": {"knn": {"k": 5}}},
    "stack": {"top_n": 5},
    "distill": {"students": [{"model": "student_mlp", "params": {"depth": 1, "width": 8}}],
                "train": {"epochs": 1}},
    "export": {"fold": 0},
}

# (--set override that introduces the typo, key path the error must name)
TYPOS = [
    ("nmae=x", "nmae"),
    ("data.trian=[a]", "data.trian"),
    ("data.synth.videoz=3", "data.synth.videoz"),
    ("folds.num_fold=3", "folds.num_fold"),
    ("backend=rey", "backend"),
    ("workers=0", "workers"),
    ("zoo.retriez=2", "zoo.retriez"),
    ("zoo.defaults.optim.lrr=0.1", "zoo.defaults.optim.lrr"),
    ("zoo.models.logistic.optim.lrr=0.1", "zoo.models.logistic.optim.lrr"),
    ("zoo.models.logistic.epochz=2", "zoo.models.logistic.epochz"),
    ("zoo.models.logistic.loss.params.margn=1", "zoo.models.logistic.loss.params.margn"),
    ("zoo.models.logistic.model.params.widht=3", "zoo.models.logistic.model"),
    ("zoo.centroids.c8.kk=3", "zoo.centroids.c8.kk"),
    ("zoo.derived.stats.frames.max_framez=3", "zoo.derived.stats.frames.max_framez"),
    ("zoo.derived.stats.optim.lrr=3", "zoo.derived.stats.optim.lrr"),
    ("zoo.neighbours.knn.kk=3", "zoo.neighbours.knn.kk"),
    ("stack.top_nn=3", "stack.top_nn"),
    ("distill.final_fitt=per_fold", "distill.final_fitt"),
    ("distill.train.optim.lrr=0.1", "distill.train.optim.lrr"),
    ("distill.final_train.epochz=2", "distill.final_train.epochz"),
    ("distill.students.0.train.lrr=2", "distill.students.0.train.lrr"),
    ("distill.students.0.params.widht=2", "distill.students.0"),
    ("distill.student_overrides.widht=2", "distill.student_overrides"),
    ("export.int88=true", "export.int88"),
]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("typos") / "pipeline.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_the_config_itself_is_valid(config_file: Path) -> None:
    PipelineConfig.from_yaml(config_file)


@pytest.mark.parametrize(("override", "key_path"), TYPOS)
def test_a_typo_in_every_section_fails_at_load_naming_file_and_key(
        config_file: Path, override: str, key_path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.from_yaml(config_file, [override])
    message = str(caught.value)
    assert message.startswith(f"{config_file}: "), message
    assert f" {key_path}: " in message or f"; {key_path}: " in message, message


def test_an_unknown_key_lists_the_known_ones(config_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"zoo\.models\.logistic\.optim\.lrr: unknown key; "
                                          r"known: grad_clip, lr, min_lr_ratio"):
        PipelineConfig.from_yaml(config_file, ["zoo.models.logistic.optim.lrr=1"])


def test_overrides_set_nested_keys_and_list_items() -> None:
    data = {"a": {"b": 1}, "l": [{"x": 1}]}
    out = apply_overrides(data, ["a.b=2", "a.c.d=[1, 2]", "l.0.x=null", "e=true"], "f.yaml")
    assert out == {"a": {"b": 2, "c": {"d": [1, 2]}}, "l": [{"x": None}], "e": True}
    assert data["a"]["b"] == 1  # the input is left as it is
    with pytest.raises(ConfigError, match=r"f\.yaml: --set 'oops': expected KEY\.PATH=VALUE"):
        apply_overrides(data, ["oops"], "f.yaml")
    with pytest.raises(ConfigError, match=r"l\.3: no such list item"):
        apply_overrides(data, ["l.3.x=1"], "f.yaml")


def test_paths_resolve_against_the_config_file_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "configs" / "real"
    folder.mkdir(parents=True)
    (folder / "m.yaml").write_text("model: {name: logistic}\n")
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({
        "data": {"train": ["../../data/train"], "test": ["../../data/t*.tfrecord"],
                 "vocabulary": "../../data/vocabulary.csv"},
        "zoo": {"models": {"m": {"config": "m.yaml"}}},
    }))
    monkeypatch.chdir(tmp_path / "configs")  # anywhere but the config's folder
    config = PipelineConfig.from_yaml(folder / "pipeline.yaml")
    assert config.data.train == [str(tmp_path / "data" / "train")]
    assert config.data.test == [str(tmp_path / "data" / "t*.tfrecord")]
    assert config.data.vocabulary == str(tmp_path / "data" / "vocabulary.csv")
    assert config.zoo.models["m"]["config"] == str(folder / "m.yaml")
    # The recorded config holds every model resolved and reads back from anywhere.
    resolved = config.resolved()
    assert resolved["zoo"]["resolved_models"]["m"]["optim"]["lr"] == 1e-3
    record = tmp_path / "run" / "config.yaml"
    record.parent.mkdir()
    record.write_text(yaml.safe_dump(resolved))
    assert PipelineConfig.from_record(record).results_fields() == config.results_fields()


def test_train_and_zoo_files_take_overrides_and_name_the_file(tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text("model: {name: logistic}\n")
    assert TrainConfig.from_yaml(model, ["optim.lr=0.5"]).optim.lr == 0.5
    with pytest.raises(ConfigError, match=r"model.yaml: optim.lrr: unknown key"):
        TrainConfig.from_yaml(model, ["optim.lrr=0.5"])
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text("models: {a: {config: model.yaml}}\n")
    assert ZooConfig.from_yaml(zoo, ["defaults.epochs=2"]).train_configs()["a"].epochs == 2
    with pytest.raises(ConfigError, match=r"zoo.yaml: models\.a\.epochz: unknown key"):
        ZooConfig.from_yaml(zoo, ["models.a.epochz=2"])


def test_a_run_recorded_before_configs_were_resolved_still_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yt8mkit.pipeline.run import _check_config
    from yt8mkit.rundir import RunConfigError

    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "m.yaml").write_text("model: {name: logistic}\n")
    (folder / "p.yaml").write_text(yaml.safe_dump({
        "data": {"train": ["../data"]}, "zoo": {"models": {"m": {"config": "m.yaml"}}}}))
    config = PipelineConfig.from_yaml(folder / "p.yaml")
    # What the previous code recorded, run from tmp_path: the paths as written (data
    # relative to the working directory then), no resolved models.
    legacy = config.model_dump(mode="json")
    legacy["data"]["train"] = ["data"]
    legacy["zoo"]["models"]["m"]["config"] = "m.yaml"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(legacy))
    monkeypatch.chdir(tmp_path)
    _check_config(run, config)
    with pytest.raises(RunConfigError, match=r"differs at stack\.top_n"):
        _check_config(run, PipelineConfig.from_yaml(folder / "p.yaml", ["stack.top_n=3"]))
