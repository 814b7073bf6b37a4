"""The import structure of toppo_jax is one-way (docs/architecture.md): core < config < runtime < entry.

Every module of `toppo_jax` is parsed, function-level imports included (only `if TYPE_CHECKING:`
blocks are skipped), and the test fails on an import of a higher layer, of an entry point, any cycle,
a core module importing anything but the standard library, jax, flax, optax and numpy, and any
`envs` module importing `toppo_jax` or `experiments`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "core": {"networks", "ppo", "popart", "combiners", "learner", "policy"},
    "config": {"config", "presets"},
    "runtime": {"rundir", "checkpoint", "sharding", "distributed", "population", "loop", "logger", "plots", "filming"},
    "entry": {"train", "evaluate", "video", "diet_coverage"},
}
ORDER = ("core", "config", "runtime", "entry")
CORE_ALLOWED = {"jax", "flax", "optax", "numpy"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, package: str, modules: set[str]) -> tuple[set[str], set[str]]:
    """(modules of `package` that `path` imports, other top-level packages it imports), anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node) for n in ast.walk(node)}
    own, other = set(), set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    own.add(parts[1])
                else:
                    other.add(parts[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != package:
                other.add(parts[0])
            elif len(parts) > 1:
                own.add(parts[1])
            else:  # from package import a, b: modules (or names of the package's __init__)
                own.update(alias.name for alias in node.names if alias.name in modules)
    return own, other


def violations(package_dir: Path, layers: dict[str, set[str]], order=ORDER, core_allowed=CORE_ALLOWED) -> list[str]:
    """Every breach of the layering rules in `package_dir` (empty when it is one-way)."""
    package = package_dir.name
    modules = {p.stem for p in package_dir.glob("*.py") if p.stem != "__init__"}
    layer_of = {m: layer for layer, names in layers.items() for m in names}
    found = [f"{package}.{m} belongs to no layer; add it to one" for m in sorted(modules - set(layer_of))]
    graph = {}
    for m in sorted(modules):
        own, other = imports_of(package_dir / f"{m}.py", package, modules)
        graph[m] = own - {m}
        for target in sorted(graph[m]):
            if target not in layer_of or m not in layer_of:
                continue
            if order.index(layer_of[target]) > order.index(layer_of[m]):
                found.append(f"{package}.{m} ({layer_of[m]}) imports {package}.{target} ({layer_of[target]}): an upward import")
            elif layer_of[target] == order[-1]:
                found.append(f"{package}.{m} imports the entry point {package}.{target}")
        if "experiments" in other:
            found.append(f"{package}.{m} imports experiments")
        if layer_of.get(m) == order[0]:
            bad = sorted(o for o in other if o not in core_allowed and o not in sys.stdlib_module_names and o != "__future__")
            if bad:
                found.append(f"{package}.{m} (core) imports {', '.join(bad)}")
    # Cycles: a depth-first search over the module graph.
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                found.append(f"import cycle: {' -> '.join(stack[stack.index(n):] + [n])}")
            elif n in graph and n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_toppo_jax_imports_only_downward_without_cycles():
    assert violations(ROOT / "toppo_jax", LAYERS) == []


def test_envs_never_imports_the_trainer():
    bad = []
    for path in sorted((ROOT / "envs").rglob("*.py")):
        _, other = imports_of(path, "envs", set())
        bad += [f"{path.relative_to(ROOT)} imports {o}" for o in sorted(other & {"toppo_jax", "experiments"})]
    assert bad == []


def _write(pkg: Path, files: dict[str, str]) -> None:
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in files.items():
        (pkg / f"{name}.py").write_text(text)


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"a": "from pkg import b\n", "b": ""}, "pkg.a (core) imports pkg.b (runtime): an upward import"),
        ({"a": "def f():\n    import pkg.b\n", "b": ""}, "an upward import"),  # function-level imports count
        ({"a": "", "b": "from pkg import c\n", "c": "from pkg.b import x\n"}, "import cycle: b -> c -> b"),
        ({"a": "import rich\n", "b": ""}, "pkg.a (core) imports rich"),
        ({"a": "", "b": "", "e": "from pkg import f\n", "f": ""}, "pkg.e imports the entry point pkg.f"),
        ({"a": "", "b": "", "z": ""}, "pkg.z belongs to no layer"),
    ],
)
def test_the_checker_finds_each_kind_of_breach(tmp_path, files, expected):
    pkg = tmp_path / "pkg"
    _write(pkg, files)
    layers = {"core": {"a"}, "config": set(), "runtime": {"b", "c"}, "entry": {"e", "f"}}
    found = violations(pkg, layers)
    assert any(expected in line for line in found), found


def test_the_checker_accepts_downward_imports_and_type_checking_blocks(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {
        "a": "import jax\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
        "b": "from pkg import a\n",
        "e": "from pkg.b import x\n",
    })
    assert violations(pkg, {"core": {"a"}, "config": set(), "runtime": {"b"}, "entry": {"e"}}) == []
