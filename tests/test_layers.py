"""The layers run one way, leisaac_tasks < policies < eval < training: a module imports only its own layer or lower
ones (lazy and type-checking imports included), and no two files import each other.

Upward imports still present are listed in KNOWN_UPWARD, each with where it goes: the list may only shrink. A new
upward import or any file cycle fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("leisaac_tasks", "policies", "eval", "training")

# demos/ and teleop/ produce training data from the scripted expert, the oracle and the instruction parser: they
# move to training/ (issue 14), and these go with them.
KNOWN_UPWARD = {
    ("leisaac_tasks.demos.attempts", "eval.oracle"),
    ("leisaac_tasks.demos.generate", "policies.scripted"),
    ("leisaac_tasks.demos.recipes", "eval.instructions"),
    ("leisaac_tasks.demos.vector_generate", "eval.vector_runner"),
    ("leisaac_tasks.demos.vector_generate", "policies.scripted"),
    ("leisaac_tasks.teleop.keyboard", "policies.motion"),
    ("leisaac_tasks.teleop.session", "eval.oracle"),
    ("leisaac_tasks.teleop.session", "policies.instruction_parser"),
}


def modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (``from eval import oracle`` is eval.oracle)."""
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
    # `from eval import oracle` names the package and the module: keep the module only
    return {name: {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
            for name, targets in edges.items()}


def layer(name: str) -> int:
    return LAYERS.index(name.split(".")[0])


def test_no_new_upward_imports():
    upward = {(a, b) for a, targets in graph().items() for b in targets if layer(b) > layer(a)}
    assert upward - KNOWN_UPWARD == set(), "imports from a higher layer"
    assert KNOWN_UPWARD - upward == set(), "gone at last: remove them from KNOWN_UPWARD"


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
