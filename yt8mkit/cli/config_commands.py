"""Looking at configs before running them: `yt8m config` prints one resolved (every
default filled in, overrides applied, paths absolute), `yt8m models` lists the
registered models and a model's parameters with their defaults."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from yt8mkit.cli.app import JsonOption, SetOption, app, print_json, results
from yt8mkit.config_files import ConfigError, apply_overrides, read_yaml_mapping


class ConfigKind(str, Enum):
    auto = "auto"
    pipeline = "pipeline"
    zoo = "zoo"
    train = "train"


def _kind(data: dict[str, Any], path: Path) -> ConfigKind:
    """What a config file is, from its top-level keys."""
    if "zoo" in data or "data" in data:
        return ConfigKind.pipeline
    if "models" in data:
        return ConfigKind.zoo
    if "model" in data:
        return ConfigKind.train
    raise ConfigError(str(path), "not a pipeline (data, zoo), zoo (models) or model (model) "
                                 "config; say which with --kind")


def resolved_config(path: Path, overrides: list[str], kind: ConfigKind = ConfigKind.auto
                    ) -> dict[str, Any]:
    """The config file checked whole and resolved, as a run records it."""
    from yt8mkit.pipeline.config import PipelineConfig
    from yt8mkit.train.config import TrainConfig
    from yt8mkit.zoo.config import ZooConfig

    if kind == ConfigKind.auto:
        kind = _kind(apply_overrides(read_yaml_mapping(path), overrides, str(path)), path)
    if kind == ConfigKind.pipeline:
        return PipelineConfig.from_yaml(path, overrides).resolved()
    if kind == ConfigKind.zoo:
        zoo = ZooConfig.from_yaml(path, overrides)
        return {**zoo.model_dump(mode="json"),
                "resolved_models": {n: c.resolved() for n, c in zoo.train_configs().items()}}
    return TrainConfig.from_yaml(path, overrides).resolved()


@app.command("config")
def config_command(
    config: Annotated[Path, typer.Argument(help="Pipeline, zoo or model config YAML.")],
    overrides: SetOption = None,
    kind: Annotated[ConfigKind, typer.Option(help="What the file is.")] = ConfigKind.auto,
    as_json: JsonOption = False,
) -> None:
    """Print the config resolved, as a run records it: every default filled in, --set
    overrides applied, paths absolute; a typo anywhere fails, naming the key path."""
    data = resolved_config(config, overrides or [], kind)
    if as_json:
        print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="A model: list its parameters.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The registered models (name, video- or frame-level); with NAME, its parameters
    and their defaults (what `model: {name: NAME, params: {...}}` takes)."""
    from yt8mkit.models.registry import MODELS

    if name is None:
        entries = MODELS.entries()
        listing = [{"name": n, "kind": entries[n].kind, "about": _about(entries[n].builder)}
                   for n in sorted(entries)]
        if as_json:
            print_json(listing)
            return
        table = Table(title="registered models")
        for column in ("model", "kind", "about"):
            table.add_column(column)
        for row in listing:
            table.add_row(row["name"], row["kind"], row["about"])
        results.print(table)
        return
    entry = MODELS.get(name)
    fields = entry.params.model_fields
    defaults = MODELS.defaults(name)
    params = [{"name": key, "type": _type_name(field.annotation),
               "default": "(required)" if field.is_required() else defaults[key]}
              for key, field in fields.items()]
    if as_json:
        print_json({"name": name, "kind": entry.kind, "params": params})
        return
    table = Table(title=f"{name} ({entry.kind}-level): parameters")
    for column in ("parameter", "type", "default"):
        table.add_column(column)
    for row in params:
        table.add_row(row["name"], row["type"], repr(row["default"]))
    results.print(table)


def _about(builder: Any) -> str:
    """The first line of the model's docstring, else of its module's."""
    doc = (builder.__doc__ or sys.modules[builder.__module__].__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")
