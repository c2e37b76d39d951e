"""tasks/warm_imports.py: after it ran, no function-level import of a pipeline stage imports.

The threads of a run (model preload, progress display, Prefect's task runner, the dashboard's
jobs) execute the stages' function-level imports. If any of those still had to be imported,
two threads could import it at once and one would get a partially initialised module (#21).
This walks every function-level import in the stage code and checks it is already loaded.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Code that runs on a run's threads: the stages and the generation / prompting models.
# (Training, evaluation and the CLI's own commands run single-threaded.)
STAGE_CODE = sorted(p for p in (ROOT / "tasks").glob("*.py")) + [
    p for pkg in ("generation", "demo_family", "prompting", "mmaudio_family")
    for p in sorted((ROOT / "models" / pkg).glob("*.py"))]
NOT_ON_THREADS = {
    "prefect",  # task decorators, imported at module level by the flows first
    "models.training.foleyworld",  # the demo library and training halves, never on a run's threads
    "matplotlib", "matplotlib.pyplot", "re",
}


def _function_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def test_every_function_level_stage_import_is_warmed() -> None:
    wanted = set().union(*(_function_level_imports(p) for p in STAGE_CODE))
    wanted = {n for n in wanted if n not in NOT_ON_THREADS and importlib.util.find_spec(n.split(".")[0])}
    code = ("import sys, json\nfrom tasks.warm_imports import import_pipeline_modules\n"
            "import_pipeline_modules()\nprint(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    loaded = set(__import__("json").loads(out))
    missing = sorted(n for n in wanted if n not in loaded)
    assert missing == [], f"add to tasks/warm_imports.py: {missing}"


def test_second_call_is_free() -> None:
    from tasks.warm_imports import import_pipeline_modules

    import_pipeline_modules()
    assert import_pipeline_modules() == 0.0
