"""The foundation (``suite/`` but its CLI) imports nothing from the stages above it, and the
import graph of the project has no circles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("suite", "tasks", "flows", "models", "policies", "stacks")
ABOVE = ("tasks", "models", "policies", "flows", "stacks")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def test_the_foundation_imports_nothing_from_the_stages() -> None:
    bad = []
    for name, path in project_modules().items():
        if not name.startswith("suite") or name.startswith("suite.cli"):
            continue
        bad += [f"{name} imports {dep}" for dep in sorted(imports(path))
                if dep.split(".")[0] in ABOVE]
    assert not bad, bad


@pytest.mark.parametrize(("a", "b"), [("suite.engine", "suite.platform.services.podman"),
                                      ("tasks.build", "tasks.evidence")])
def test_no_import_circle(a: str, b: str) -> None:
    """Neither imports the other back, not even inside a function."""
    modules = project_modules()
    assert not ({b} & imports(modules[a]) and {a} & imports(modules[b])), (a, b)
