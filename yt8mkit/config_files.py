"""Reading a YAML config file: a missing file, a folder, bad YAML or a document that is
not a mapping is a clear error naming the file, never a traceback; then checked whole
against its typed model (``load``), so that a typo anywhere fails before any work,
naming the file and the key path (``pipeline.yaml: zoo.models.logistic.optim.lrr:
unknown key; known: lr, ...``). ``--set key.path=value`` overrides are applied first, and
relative paths resolve against the config file's folder."""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo

from yt8mkit.errors import BadInputError


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of an input file, or BadInputError saying why it cannot be read."""
    file = Path(path)
    if file.is_dir():
        raise BadInputError(str(path), "is a folder, not a file")
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(str(path), f"cannot be read ({err})") from None


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a YAML config file holds (empty for an empty file)."""
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        raise BadInputError(str(path), f"not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        found = type(data).__name__
        raise BadInputError(str(path), f"a config must be a YAML mapping, not a {found}")
    return data


# ---------------------------------------------------------------- checked configs


class KeyPathError(ValueError):
    """Raised by a validator about a key below the one it validates: ``path`` (dotted,
    relative to that key) says where, so that the message names the whole key path."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: {what}" if path else what)
        self.path = path
        self.what = what


def key_path_error(prefix: str, err: ValidationError, root: type[BaseModel] | None = None
                   ) -> KeyPathError:
    """A nested model's ValidationError as one KeyPathError under ``prefix`` (its first
    problem; the others follow in the message)."""
    problems = describe(err, root)
    path, what = problems[0]
    rest = "".join(f"; {p}: {w}" for p, w in problems[1:])
    return KeyPathError(".".join(p for p in (prefix, path) if p), what + rest)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """An annotation without Optional, Union and Annotated: its model or container."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            inner = _unwrap(arg)
            if _is_model(inner) or get_origin(inner) in (dict, list):
                return inner
        return None
    return annotation


def _known_keys(root: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    """The keys the model at ``loc`` (a key path from ``root``) accepts."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        elif _is_model(current) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    current = _unwrap(current)
    return sorted(current.model_fields) if _is_model(current) else []


def describe(err: ValidationError, root: type[BaseModel] | None = None
             ) -> list[tuple[str, str]]:
    """(key path, what is wrong) of each problem pydantic found, e.g.
    ("zoo.models.logistic.optim.lrr", "unknown key; known: lr, ...")."""
    out = []
    for problem in err.errors():
        loc = [p for p in problem["loc"] if not (isinstance(p, str) and "[" in p)]
        path = ".".join(str(p) for p in loc)
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, KeyPathError):
            path = ".".join(p for p in (path, cause.path) if p)
            out.append((path, cause.what))
            continue
        what = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            known = _known_keys(root, loc[:-1])
            what = "unknown key" + (f"; known: {', '.join(known)}" if known else "")
        elif problem["type"] == "missing":
            what = "required key missing"
        out.append((path or "(top level)", what))
    return out


class ConfigError(BadInputError):
    """A config that does not validate: the file, the key path and what is wrong."""


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str
                    ) -> dict[str, Any]:
    """``data`` with each ``key.path=value`` of ``overrides`` set (the value read as
    YAML: ``3``, ``0.1``, ``true``, ``[a, b]``, ``null``); numbers index lists."""
    result = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(source, f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(source, f"--set {key}: the value is not YAML ({err})") from None
        node: Any = result
        parts = key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(source, f"--set {key}: {where}: no such list item")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(source, f"--set {key}: {where} is not a section")
    return result


Model = TypeVar("Model", bound=BaseModel)


def validate(cls: type[Model], data: dict[str, Any], source: str, base: Path) -> Model:
    """``data`` checked whole as a ``cls``; relative paths in it resolve against
    ``base`` (the config file's folder). A problem anywhere is a ConfigError naming
    ``source`` (the file) and the key path."""
    try:
        return cls.model_validate(data, context={"base": base})
    except ValidationError as err:
        problems = describe(err, cls)
        raise ConfigError(source, "; ".join(f"{p}: {w}" for p, w in problems)) from None


def load(cls: type[Model], path: str | os.PathLike[str], overrides: Sequence[str] = ()
         ) -> Model:
    """A config file read, ``--set`` overrides applied, and checked whole."""
    file = Path(path)
    data = apply_overrides(read_yaml_mapping(file), overrides, str(file))
    return validate(cls, data, str(file), file.parent)


def resolve_path(value: str, info: ValidationInfo) -> str:
    """A path from a config, absolute: a relative one is read from the config file's
    folder (the validation context's ``base``), else from the working directory."""
    base = (info.context or {}).get("base") or Path.cwd()
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))
