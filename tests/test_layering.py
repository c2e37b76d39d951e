"""The shape of the code (README.md, "Layout"), checked on the source: the dependency direction
(flows → tasks → models | sql), no import loops, the generation and prompting path free of
training and evaluation code, and no private name used outside its module.

Imports are read with ``ast`` at every level (module top and inside functions alike), so an
import hidden in a function is an edge of the graph like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "models", "sql")
# The generation core and what plugs into it or runs beside it at inference time.
INFERENCE_PACKAGES = ("models.generation", "models.demo_family", "models.mmaudio_family",
                      "models.prompting")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(pkg: str, root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / pkg).rglob("*.py") if "migrations" not in p.parts)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {_module_name(p, root): p for pkg in packages for p in _sources(pkg, root)}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a module's attribute) lives in."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _own_imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[ast.AST, str, list[str]]]:
    """(node, imported module of ours, names taken from it) for every import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                target = _resolve(a.name, modules)
                if target is not None:
                    out.append((node, target, []))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            for a in node.names:
                sub = _resolve(f"{base}.{a.name}", modules)
                if sub is not None and sub != _resolve(base, modules):
                    out.append((node, sub, []))  # a submodule: ``from pkg import module``
                else:
                    target = _resolve(base, modules)
                    if target is not None:
                        out.append((node, target, [a.name]))
    return out


def _graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = _modules(root, packages)
    return {m: {t for _, t, _ in _own_imports(m, p, modules)} - {m} for m, p in modules.items()}


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return loops


def _inference_imports_of_training(root: Path = ROOT) -> list[str]:
    graph = _graph(root)
    return [f"{m} imports {t}" for m, targets in sorted(graph.items())
            if m.startswith(tuple(f"{p}." for p in INFERENCE_PACKAGES)) or m in INFERENCE_PACKAGES
            for t in sorted(targets) if t.startswith(("models.training", "models.evaluation"))]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``from ours import _name`` and ``ours_module._name`` outside the module that defines it."""
    modules = _modules(root, packages)
    bad = []
    for m, path in sorted(modules.items()):
        bound: dict[str, str] = {}  # local name -> module of ours it is bound to
        for node, target, names in _own_imports(m, path, modules):
            if target == m:
                continue
            for name in names:
                if _private(name):
                    bad.append(f"{path.relative_to(root)}:{node.lineno} imports {target}.{name}")
            if isinstance(node, ast.Import):
                for a in node.names:
                    bound[a.asname or a.name] = target
            elif not names:
                for a in node.names:
                    bound[a.asname or a.name] = target
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                value = node.value
                dotted = []
                while isinstance(value, ast.Attribute):
                    dotted.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in bound:
                    owner = ".".join([bound[value.id], *reversed(dotted)]) if dotted else bound[value.id]
                    if _resolve(owner, modules) not in (None, m):
                        bad.append(f"{path.relative_to(root)}:{node.lineno} uses {owner}.{node.attr}")
    return bad


# ------------------------------------------------------------------ the direction of dependencies
@pytest.mark.parametrize("pkg", ["models", "sql"])
def test_only_flows_and_tasks_import_prefect(pkg: str) -> None:
    bad = [str(p.relative_to(ROOT)) for p in _sources(pkg) if "prefect" in _imports(p)]
    assert bad == []


def test_models_and_sql_never_import_each_other_or_upwards() -> None:
    bad = []
    for pkg, forbidden in (("models", {"sql", "tasks", "flows"}), ("sql", {"models", "tasks", "flows"})):
        for p in _sources(pkg):
            hit = _imports(p) & forbidden
            if hit:
                bad.append(f"{p.relative_to(ROOT)} imports {sorted(hit)}")
    assert bad == []


def test_nothing_imports_flows() -> None:
    bad = [str(p.relative_to(ROOT)) for pkg in ("tasks", "models", "sql")
           for p in _sources(pkg) if "flows" in _imports(p)]
    assert bad == []


def test_models_use_no_ffmpeg() -> None:
    bad = [str(p.relative_to(ROOT)) for p in _sources("models")
           if _imports(p) & {"ffmpeg", "imageio_ffmpeg", "av", "subprocess"}]
    assert bad == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    probe = tmp_path / "x.py"
    probe.write_text("import prefect\nfrom flows.cli import main\n")
    assert {"prefect", "flows"} <= _imports(probe)


# ------------------------------------------------------------------ no import loops
def test_no_import_loops() -> None:
    assert _loops(_graph()) == []


def test_the_loop_checker_sees_a_loop(tmp_path: Path) -> None:
    """A loop closed by an import inside a function (the kind that hides) is still a loop."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    (tmp_path / "tasks" / "a.py").write_text("from tasks.b import helper\n")
    (tmp_path / "tasks" / "b.py").write_text("def helper():\n    from tasks import a\n    return a\n")
    (tmp_path / "tasks" / "c.py").write_text("import tasks.a\n")
    assert _loops(_graph(tmp_path, ("tasks",))) == [["tasks.a", "tasks.b"]]


# ------------------------------------------------------------------ inference free of training
def test_generation_and_prompting_never_import_training_or_evaluation() -> None:
    assert _inference_imports_of_training() == []


def test_the_training_checker_sees_a_violation(tmp_path: Path) -> None:
    for pkg in ("models", "models/prompting", "models/training"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "models" / "training" / "foleyworld.py").write_text("CLASSES = ()\n")
    (tmp_path / "models" / "prompting" / "captioner.py").write_text(
        "def classes():\n    from models.training import foleyworld\n    return foleyworld.CLASSES\n")
    assert _inference_imports_of_training(tmp_path) == [
        "models.prompting.captioner imports models.training.foleyworld"]


# ------------------------------------------------------------------ private names stay home
def test_no_private_name_is_used_outside_its_module() -> None:
    assert _private_uses() == []


def test_the_private_name_checker_sees_violations(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    (tmp_path / "tasks" / "generate.py").write_text("def _fit(x):\n    return x\n\n\ndef fit(x):\n    return _fit(x)\n")
    (tmp_path / "tasks" / "regenerate.py").write_text(
        "from tasks.generate import _fit, fit\nfrom tasks import generate\n\n\n"
        "def again(x):\n    return generate._fit(fit(_fit(x)))\n")
    assert _private_uses(tmp_path, ("tasks",)) == [
        "tasks/regenerate.py:1 imports tasks.generate._fit",
        "tasks/regenerate.py:6 uses tasks.generate._fit"]
