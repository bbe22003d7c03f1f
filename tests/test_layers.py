"""The layers run one way, leisaac_tasks < policies < eval < training: a module imports only its own layer or lower
ones (lazy and type-checking imports included), and no two files import each other.

An upward import or any file cycle fails here: there are no exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("leisaac_tasks", "policies", "eval", "training")



def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (``from eval import metrics`` is eval.metrics)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {name: imports(name, path, known) for name, path in known.items()}
    # `from eval import metrics` names the package and the module: keep the module only
    return {name: {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
            for name, targets in edges.items()}


def layer(name: str) -> int:
    return LAYERS.index(name.split(".")[0])


def test_no_upward_imports():
    upward = sorted((a, b) for a, targets in graph().items() for b in targets if layer(b) > layer(a))
    assert upward == [], "imports from a higher layer"


def test_no_two_files_import_each_other():
    edges = graph()
    cycles = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges.get(b, ())})
    assert cycles == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: an import inside a function and a relative one are both edges."""
    pkg = tmp_path / "eval"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from training.x import y\n")
    (pkg / "b.py").write_text("from . import a\n")
    known = {"eval": pkg / "__init__.py", "eval.a": pkg / "a.py", "eval.b": pkg / "b.py", "training.x": tmp_path / "x"}
    assert imports("eval.a", pkg / "a.py", known) == {"training.x"}
    assert "eval.a" in imports("eval.b", pkg / "b.py", known)
