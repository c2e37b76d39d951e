"""The dependency direction of ARCHITECTURE.md §2, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "models", "sql")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


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
