"""The floor plan, checked from the imports: three layers, no cycles, small modules, configs inside the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cnnbench

PACKAGE = Path(cnnbench.__file__).resolve().parent
MAX_LINES = 300
COMMANDS_AND_BOUNDARY = {"__init__.py", "__main__.py", "cli.py", "train.py", "evaluate.py", "inspect.py", "report.py",
                         "launch.py", "errors.py", "hydra_job.py", "predict.py", "export.py"}  # and config/


def module_name(path: Path) -> str:
    parts = ["cnnbench", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module `name` imports, at any depth of its code (function-level imports included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found |= {target, *(f"{target}.{alias.name}" for alias in node.names)}
    return found


def internal(name: str) -> set[str]:
    own = {m for m in imports(name) if m in MODULES and m != name}
    if MODULES[name].name == "__init__.py":  # a package's face may import its own modules
        own = {m for m in own if not m.startswith(name + ".")}
    return own


def test_the_engine_never_imports_hydra_or_omegaconf():
    engine = [m for m in MODULES if m.startswith("cnnbench.engine")]
    assert len(engine) >= 7
    for name in engine:
        assert not {m.split(".")[0] for m in imports(name)} & {"hydra", "omegaconf"}, name


@pytest.mark.parametrize("layer", ["cnnbench.runtime", "cnnbench.models"])
def test_runtime_and_models_import_nothing_of_cnnbench_but_errors(layer):
    for name in [m for m in MODULES if m.startswith(layer)]:
        outside = {m for m in internal(name) if not m.startswith(layer) and m not in ("cnnbench.errors", "cnnbench")}
        assert not outside, (name, outside)


def test_models_and_data_know_nothing_of_configs():
    """Models and data take plain arguments or frozen settings, never a DictConfig; a model refuses bad arguments
    with ValueError/TypeError, and the config's words (the `model.` keys, ConfigError) are the top's."""
    lower = [m for m in MODULES if m.startswith(("cnnbench.models", "cnnbench.data"))]
    assert len(lower) >= 20
    for name in lower:
        assert not {m.split(".")[0] for m in imports(name)} & {"hydra", "omegaconf"}, name
        if name.startswith("cnnbench.models"):
            assert "ConfigError" not in MODULES[name].read_text(), name


def test_hydras_globals_are_read_in_one_place():
    readers = sorted(name for name in MODULES if {"hydra.core.hydra_config", "hydra.core.hydra_config.HydraConfig"}
                     & imports(name))
    assert readers == ["cnnbench.hydra_job"]


def test_no_module_registers_a_resolver_when_it_is_imported():
    for name, path in MODULES.items():
        for statement in ast.parse(path.read_text()).body:  # module level only: a function may register one
            calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)] \
                if not isinstance(statement, ast.FunctionDef | ast.ClassDef) else []
            called = {getattr(c.func, "attr", getattr(c.func, "id", "")) for c in calls}
            assert "register_new_resolver" not in called, name


def test_no_import_cycles():
    graph = {name: internal(name) for name in MODULES}
    assert sum(map(len, graph.values())) > 100  # the walk sees the imports (check_layers.py counts 150)
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in graph[name]:
            assert state.get(target) != "open", " -> ".join([*path, name, target])
            if target not in state:
                visit(target, [*path, name])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])


def test_the_lower_layers_never_import_the_commands():
    commands = {"cnnbench.cli", "cnnbench.train", "cnnbench.evaluate", "cnnbench.inspect", "cnnbench.report",
                "cnnbench.launch", "cnnbench.hydra_job", "cnnbench.predict", "cnnbench.export"}
    layers = ("cnnbench.engine", "cnnbench.runtime", "cnnbench.models", "cnnbench.data", "cnnbench.results")
    for name in [m for m in MODULES if m.startswith(layers)]:
        assert not {m for m in internal(name) if m in commands or m.startswith("cnnbench.config")}, name


def test_modules_are_small_and_the_top_level_holds_only_the_commands_and_the_config_boundary():
    for path in MODULES.values():
        assert len(path.read_text().splitlines()) <= MAX_LINES, path
    assert {p.name for p in PACKAGE.glob("*.py")} == COMMANDS_AND_BOUNDARY


def test_the_configs_are_found_wherever_the_package_is():
    conf = Path(cnnbench.CONF_DIR)
    assert (conf / "config.yaml").is_file() and (conf / "model" / "lenet5.yaml").is_file()


def test_every_package_and_config_folder_ships_in_a_regular_install():
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    code = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    conf = Path(cnnbench.CONF_DIR)
    configs = {".".join(["cnnbench.conf", *d.relative_to(conf).parts]).rstrip(".") for d in [conf, *conf.rglob("*/")]}
    assert listed == code | configs
