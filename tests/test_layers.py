"""The layers hold: reading a config loads no framework, and the import contract and
the package graph have no cycle (the contract itself runs in `make test`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "onnxruntime", "onnx", "lightgbm", "faiss", "pywt", "sklearn", "ray")


def _loaded_after(statement: str) -> list[str]:
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_config_modules_load_no_framework() -> None:
    statement = ("import yt8mkit.pipeline.config, yt8mkit.zoo.config, yt8mkit.train.config, "
                 "yt8mkit.distill.config, yt8mkit.ensemble.config, yt8mkit.export.config, "
                 "yt8mkit.rundir")
    assert _loaded_after(statement) == []


def test_model_lookup_loads_the_models() -> None:
    # The registry imports the architectures on the first look-up, not before.
    assert "torch" in _loaded_after(
        "from yt8mkit.models.registry import list_models; assert 'logistic' in list_models()")


def test_no_cycle_between_packages_or_modules() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "import_graph.py")],
                         capture_output=True, text=True, check=True)
    assert "mutually reachable package pairs (cycles): 0" in out.stdout
    assert "module cycles (lazy imports counted): 0" in out.stdout


def _third_party_imports(folder: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {"yt8mkit"}


def test_runtime_dependencies_are_what_the_package_imports() -> None:
    import re
    from importlib.metadata import packages_distributions

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ]", r)[0].lower().replace("_", "-") for r in requirements}

    declared = names(project["dependencies"])
    cluster = names(project["optional-dependencies"]["cluster"])
    distributions = packages_distributions()
    imported = {distributions[module][0].lower().replace("_", "-")
                for module in _third_party_imports(ROOT / "yt8mkit")}
    assert imported - cluster == declared
