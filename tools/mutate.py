"""On-demand mutation testing: does the test suite notice when one module's code changes?

Usage (from the repo root, with the project's venv):

    .venv/bin/python tools/mutate.py MODULE.py TEST [TEST ...] [-k EXPR] [-m MARKEXPR]
                                     [--only ID[,ID...]] [--list] [--json OUT.json]

    e.g. .venv/bin/python tools/mutate.py sql/claims.py tests/sql/test_claims.py -m "not postgres"

MODULE is the file to mutate; TESTs are the test files (or node ids) that exercise it, run with
pytest ``-x``; ``-k``/``-m`` are passed to pytest. ``--list`` prints the mutants without running
anything; ``--only`` runs the given mutant ids (as printed); ``--json`` writes every result.
Not part of the default test run: it costs one pytest process per mutant. Run it on the modules
you change, with their fast tests, and record the scores in docs/mutation.md.

Mutants: one change at a time, generated from the module's ``ast`` and written back with
``ast.unparse``:
  - comparison swaps: < ↔ <= and < ↔ >, likewise for > and >=; == ↔ !=; is ↔ is not; in ↔ not in;
  - arithmetic swaps: + ↔ −, * ↔ /, // → *, % → //, ** → *, | ↔ &, unary − dropped, not dropped;
    also in augmented assignments (+= → −= …);
  - boolean operators: and ↔ or; conditions of if/while/ternaries negated (non-comparisons);
  - constants: int n → n + 1, float 0 → 1 and x → 1.5·x, True ↔ False, string s → s + "~"
    (not docstrings, dict keys, subscripts, or messages of a raise);
  - calls swapped: min ↔ max, minimum ↔ maximum, any ↔ all, floor ↔ ceil, is_ ↔ is_not;
    a method call without arguments dropped (``s.lower()`` → ``s``);
  - statement deletion (replaced by ``pass``): expression statements, return, raise,
    augmented assignments, and assignments that rebind an already bound name or mutate an
    attribute or item (deleting a first binding only raises NameError: not worth a mutant).
Type annotations, imports and decorators are never mutated.

Safety: the working tree is never written. The repository's packages and tests are copied into
a temporary directory; each mutant is written there (atomically, write-then-rename) and the
copy's tests run with ``PYTHONPATH`` pointing at the copy (the editable install's finder comes
after the path finder, so the copy's modules win; checked before the run) and no bytecode
cache. The copy is deleted on exit, Ctrl-C included, and a running pytest's process group is
killed.

Results: *killed* (a test failed or errored, or the run timed out: 3× the clean run plus 20 s),
*survived* (every test passed). A survivor is either a hole in the tests or an equivalent
mutant (same behaviour as the original); docs/mutation.md says which.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("flows", "tasks", "models", "sql", "tests", "pyproject.toml", "conftest.py")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "test-artifacts")

_CMP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}
_BIN_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
}
_CALL_SWAPS = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum",
               "any": "all", "all": "any", "floor": "ceil", "ceil": "floor", "is_": "is_not",
               "is_not": "is_"}
_SYM = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
        ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+",
        ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
        ast.BitOr: "|", ast.BitAnd: "&"}


@dataclass
class Mutant:
    id: int
    line: int
    col: int
    change: str
    status: str = "not run"
    seconds: float = 0.0


class _Mutator(ast.NodeTransformer):
    """Walks the tree in a fixed order, numbering every possible change; with ``target`` set,
    applies change number ``target`` (and only it)."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.found: list[Mutant] = []
        self.applied = False
        self._bound: list[set[str]] = [set()]
        self._no_str = 0  # >0 inside raise statements, subscripts, dict keys
        self._stmt_call: ast.AST | None = None

    # -- bookkeeping -------------------------------------------------------------------------
    def _offer(self, node: ast.AST, change: str, make: Callable[[], ast.AST]) -> ast.AST | None:
        idx = len(self.found)
        self.found.append(Mutant(idx, getattr(node, "lineno", 0), getattr(node, "col_offset", 0), change))
        if idx == self.target:
            self.applied = True
            return ast.copy_location(make(), node)
        return None

    def _first(self, node: ast.AST, offers: list[tuple[str, Callable[[], ast.AST]]]) -> ast.AST | None:
        hit = None
        for change, make in offers:
            got = self._offer(node, change, make)
            hit = hit or got
        return hit

    def _delete(self, node: ast.stmt, what: str) -> ast.AST | None:
        return self._offer(node, f"delete {what}", lambda: ast.Pass())

    # -- structure: skip docstrings, annotations, imports, decorators -----------------------
    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out = []
        for i, stmt in enumerate(body):
            if (i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)):
                out.append(stmt)  # docstring
                continue
            new = self.visit(stmt)
            out.extend(new if isinstance(new, list) else [new])
        return out

    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = self._body(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        a = node.args
        a.defaults = [self.visit(d) for d in a.defaults]
        a.kw_defaults = [self.visit(d) if d is not None else None for d in a.kw_defaults]
        names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
        names |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
        self._bound.append(names)
        node.body = self._body(node.body)
        self._bound.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = self._body(node.body)
        return node

    def visit_Import(self, node: ast.AST) -> ast.AST:
        return node

    visit_ImportFrom = visit_Import

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._bound[-1].add(node.target.id)
        return node

    def visit_JoinedStr(self, node: ast.AST) -> ast.AST:
        return node

    # -- statements --------------------------------------------------------------------------
    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self._stmt_call = node.value  # dropping a statement's own call = deleting the statement
        return self._delete(node, "statement") or self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> ast.AST:
        return self._delete(node, "return") or self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        hit = self._delete(node, "raise")
        if hit:
            return hit
        self._no_str += 1
        self.generic_visit(node)
        self._no_str -= 1
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        offers: list[tuple[str, Callable[[], ast.AST]]] = [("delete augmented assignment", ast.Pass)]
        swap = _BIN_SWAPS.get(type(node.op))
        if swap is not None:
            def make(swap: type = swap) -> ast.AST:
                new = copy.deepcopy(node)
                new.op = swap()
                return new
            offers.append((f"{_SYM[type(node.op)]}= -> {_SYM[swap]}=", make))
        return self._first(node, offers) or self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        in_function = len(self._bound) > 1
        names = {n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)
                 and isinstance(n.ctx, ast.Store)}
        mutates = any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets)
        rebinds = bool(names) and names <= self._bound[-1]
        hit = None
        if in_function and (mutates or rebinds):
            hit = self._delete(node, "assignment")
        self._bound[-1] |= names
        return hit or self.generic_visit(node)

    def visit_For(self, node: ast.For) -> ast.AST:
        self._bound[-1] |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        return self.generic_visit(node)

    def _negate_test(self, node: ast.AST) -> ast.AST | None:
        test = node.test  # type: ignore[attr-defined]
        if isinstance(test, ast.Compare):
            return None  # the comparison swaps cover it
        def make() -> ast.AST:
            new = copy.deepcopy(node)
            new.test = ast.UnaryOp(ast.Not(), new.test)  # type: ignore[attr-defined]
            return new
        return self._offer(node, f"negate condition `{ast.unparse(test)}`", make)

    def visit_If(self, node: ast.If) -> ast.AST:
        return self._negate_test(node) or self.generic_visit(node)

    visit_While = visit_If
    visit_IfExp = visit_If

    # -- expressions -------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        offers = []
        for i, op in enumerate(node.ops):
            for swap in _CMP_SWAPS.get(type(op), ()):
                def make(i: int = i, swap: type = swap) -> ast.AST:
                    new = copy.deepcopy(node)
                    new.ops[i] = swap()
                    return new
                offers.append((f"{_SYM[type(op)]} -> {_SYM[swap]}", make))
        return self._first(node, offers) or self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        swap = _BIN_SWAPS.get(type(node.op))
        if swap is not None:
            def make() -> ast.AST:
                new = copy.deepcopy(node)
                new.op = swap()
                return new
            hit = self._offer(node, f"{_SYM[type(node.op)]} -> {_SYM[swap]}", make)
            if hit:
                return hit
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, (ast.USub, ast.Not)):
            sym = "-" if isinstance(node.op, ast.USub) else "not "
            hit = self._offer(node, f"drop unary `{sym}`", lambda: copy.deepcopy(node.operand))
            if hit:
                return hit
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        def make() -> ast.AST:
            new = copy.deepcopy(node)
            new.op = other()
            return new
        name = "and -> or" if other is ast.Or else "or -> and"
        return self._offer(node, name, make) or self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if (isinstance(f, ast.Attribute) and not node.args and not node.keywords
                and name not in _CALL_SWAPS and node is not self._stmt_call):
            hit = self._offer(node, f"drop call .{name}()", lambda: copy.deepcopy(f.value))
            if hit:
                return hit
        if name in _CALL_SWAPS:
            def make() -> ast.AST:
                new = copy.deepcopy(node)
                if isinstance(new.func, ast.Name):
                    new.func.id = _CALL_SWAPS[name]
                else:
                    new.func.attr = _CALL_SWAPS[name]  # type: ignore[union-attr]
                return new
            hit = self._offer(node, f"call {name} -> {_CALL_SWAPS[name]}", make)
            if hit:
                return hit
        return self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node.value = self.visit(node.value)
        self._no_str += 1
        node.slice = self.visit(node.slice)
        self._no_str -= 1
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self._no_str += 1
        node.keys = [self.visit(k) if k is not None else None for k in node.keys]
        self._no_str -= 1
        node.values = [self.visit(v) for v in node.values]
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        v = node.value
        if isinstance(v, bool):
            return self._offer(node, f"{v} -> {not v}", lambda: ast.Constant(not v)) or node
        if isinstance(v, int):
            return self._offer(node, f"{v} -> {v + 1}", lambda: ast.Constant(v + 1)) or node
        if isinstance(v, float):
            new = 1.0 if v == 0 else v * 1.5
            return self._offer(node, f"{v!r} -> {new!r}", lambda: ast.Constant(new)) or node
        if isinstance(v, str) and not self._no_str:
            return self._offer(node, f"{v!r} -> {v + '~'!r}", lambda: ast.Constant(v + "~")) or node
        return node


def mutants(source: str) -> list[Mutant]:
    m = _Mutator()
    m.visit(ast.parse(source))
    return m.found


def mutated_source(source: str, target: int) -> str:
    m = _Mutator(target)
    tree = ast.fix_missing_locations(m.visit(ast.parse(source)))
    if not m.applied:
        raise IndexError(f"no mutant {target}")
    return ast.unparse(tree) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.mutate.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Runner:
    """pytest in the copy, one process group per run, killable on Ctrl-C."""

    def __init__(self, copy_root: Path, tests: list[str], extra: list[str]) -> None:
        self.copy_root = copy_root
        self.cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                    "--no-header", "-o", "addopts=", *extra, *tests]
        self.env = {**os.environ, "PYTHONPATH": str(copy_root), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self, timeout: float | None) -> tuple[str, float, str]:
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=self.copy_root, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.kill()
            return "killed (timeout)", time.monotonic() - t0, ""
        finally:
            self.proc = None
        status = "survived" if rc == 0 else "killed" if rc in (1, 2, 3) else f"error (pytest exit {rc})"
        return status, time.monotonic() - t0, out.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def _make_copy(dst: Path) -> None:
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=IGNORED, symlinks=True)
        elif src.exists():
            shutil.copy2(src, dst / name)


def _check_copy_imports(copy_root: Path, module: str) -> None:
    dotted = module[:-3].replace("/", ".")
    code = f"import importlib; print(importlib.import_module({dotted!r}).__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy_root, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(copy_root), "PYTHONDONTWRITEBYTECODE": "1"})
    if out.returncode != 0 or not out.stdout.strip().startswith(str(copy_root)):
        raise SystemExit(f"the copy's {dotted} is not the one imported: {out.stdout}{out.stderr}")


def _line(source: str, lineno: int) -> str:
    lines = source.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("module", help="path of the module to mutate, relative to the repo root")
    ap.add_argument("tests", nargs="*", help="test files or node ids that exercise it")
    ap.add_argument("-k", dest="k", help="pytest -k expression")
    ap.add_argument("-m", dest="m", help="pytest -m marker expression")
    ap.add_argument("--only", help="comma-separated mutant ids to run")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--json", type=Path, help="write every mutant's result here")
    args = ap.parse_args(argv)

    module = Path(args.module).as_posix()
    source = (ROOT / module).read_text()
    found = mutants(source)
    if args.list:
        for m in found:
            print(f"{m.id:4d}  {module}:{m.line}:{m.col}  {m.change:40s}  | {_line(source, m.line)}")
        print(f"{len(found)} mutants")
        return 0
    if not args.tests:
        ap.error("name the tests that exercise the module")
    chosen = found if not args.only else [found[int(i)] for i in args.only.split(",")]
    extra = (["-k", args.k] if args.k else []) + (["-m", args.m] if args.m else [])

    tmp = Path(tempfile.mkdtemp(prefix="stepfoley-mutate-"))
    runner = _Runner(tmp, args.tests, extra)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        _make_copy(tmp)
        _check_copy_imports(tmp, module)
        target = tmp / module
        # The clean run, on the unparsed original (what every mutant is compared with).
        _write_atomic(target, ast.unparse(ast.parse(source)) + "\n")
        status, base_s, out = runner.run(None)
        if status != "survived":
            print(out[-4000:])
            raise SystemExit("the tests fail on the unmutated module: fix that first")
        timeout = 3 * base_s + 20
        print(f"{module}: {len(chosen)} mutants; clean run {base_s:.1f} s", flush=True)
        for m in chosen:
            _write_atomic(target, mutated_source(source, m.id))
            m.status, m.seconds, _ = runner.run(timeout)
            print(f"{m.id:4d}  {m.status:17s} {m.seconds:5.1f} s  {module}:{m.line}  {m.change}"
                  f"  | {_line(source, m.line)}", flush=True)
    except KeyboardInterrupt:
        runner.kill()
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        runner.kill()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(tmp, ignore_errors=True)

    killed = [m for m in chosen if m.status.startswith("killed")]
    survived = [m for m in chosen if m.status == "survived"]
    errors = [m for m in chosen if m.status.startswith("error")]
    print(f"\n{module}: {len(chosen)} mutants, {len(killed)} killed, {len(survived)} survived"
          + (f", {len(errors)} errors" if errors else ""))
    for m in survived:
        print(f"  survived #{m.id}  {module}:{m.line}:{m.col}  {m.change}  | {_line(source, m.line)}")
    if args.json:
        args.json.write_text(json.dumps({"module": module, "tests": args.tests, "extra": extra,
                                         "mutants": [asdict(m) for m in chosen]}, indent=1))
    return 0 if not survived and not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
