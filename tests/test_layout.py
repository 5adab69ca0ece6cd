"""The package layout: a folder per stage, no import cycles, lower stages never import higher ones,
modules of at most 400 lines, and light modules that never pull in torch or OpenGL (issue 11)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mme3dr", "leaderboard", "ar3d_r1")
MAX_LINES = 400

# Stages in dependency order: a module may import its own stage or a lower one, never a higher one.
# (The data flow of design.md §1 reads benchmark → assets → render → features → metrics; the *imports*
# run the other way where a stage uses a lower one's functions: the demo benchmark builds its reference
# assets from `assets.primitive_shapes`, and the feature suite's card reads the metric facts.)
STAGES = (
    ("mme3dr", "mme3dr.hashing", "mme3dr.results"),
    ("mme3dr.assets",),
    ("mme3dr.benchmark",),
    ("mme3dr.render",),
    ("mme3dr.metrics",),
    ("mme3dr.features",),
    ("mme3dr.judge",),
    ("mme3dr.models",),
    ("mme3dr.report",),
    ("mme3dr.harness", "mme3dr.compare", "mme3dr.audit"),
    ("leaderboard", "ar3d_r1"),
    ("mme3dr.cli",),
)
# Light modules: importing them must load neither torch nor any OpenGL binding.
HEAVY = ("torch", "OpenGL", "moderngl", "glcontext", "pyrender")


def module_files() -> dict[str, Path]:
    """``{dotted module name: path}`` of every module in the three packages (``__init__`` = the package)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` → ``a.b``)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    """Edges ``module -> modules it imports`` from the AST, function-level (lazy) imports included.

    ``from a.b import c`` points at the module ``a.b.c`` when it exists, else at ``a.b``. The implicit
    import of a parent package's ``__init__`` is not an edge: a module that imports a sibling through its
    full path does not depend on what the package re-exports.
    """
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def stage_of(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} belongs to no stage: add its folder to STAGES"
    return best


def test_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_lazy_and_from_imports():
    graph = import_graph()
    # `from mme3dr.assets import primitive_shapes` is an edge to the submodule, not the package.
    assert "mme3dr.assets.primitive_shapes" in graph["mme3dr.benchmark.demo"]
    # A function-level import counts (pool imports the renderer lazily).
    assert "mme3dr.render.renderer" in graph["mme3dr.render.pool"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_lower_stages_never_import_higher_ones():
    bad = []
    for module, targets in import_graph().items():
        for target in targets:
            if stage_of(target) > stage_of(module):
                bad.append(f"{module} -> {target}")
    assert not bad, "a lower stage imports a higher one: " + ", ".join(sorted(bad))


def test_modules_are_at_most_400_lines():
    too_long = {str(p.relative_to(REPO)): n for p in module_files().values()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_tests_mirror_the_packages():
    # Every stage folder of mme3dr has its test folder of the same name.
    for folder in sorted(p for p in (REPO / "mme3dr").iterdir() if (p / "__init__.py").is_file()):
        if folder.name == "cli":
            continue  # each command is tested with its stage
        missing = f"tests/{folder.name}/ is missing for mme3dr/{folder.name}/"
        assert (REPO / "tests" / folder.name).is_dir(), missing


@pytest.mark.parametrize("light", [["mme3dr.results", "leaderboard"], ["leaderboard.*"], ["mme3dr.judge"]])
def test_light_modules_import_neither_torch_nor_opengl(light):
    if light == ["mme3dr.judge"] and not (REPO / "mme3dr" / "judge").is_dir():
        pytest.skip("mme3dr.judge does not exist yet")
    if light == ["leaderboard.*"]:
        light = [n for n in module_files() if n.startswith("leaderboard")]
    names = light
    code = ("import importlib, json, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == [], f"importing {names} loaded {out.stdout.strip()}"
