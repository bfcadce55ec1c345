"""The layer rule, read from the imports: nothing imports upward, nothing imports pipelines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folder -> the layers its package code may import (``core`` is the top ``regenmap`` package).
ALLOWED = {
    "core": {"core"},
    "geo": {"core", "geo"},
    "features": {"core", "geo", "features"},
    "models": {"core", "features", "models"},
    "maps": {"core", "geo", "maps"},
    "pipelines": {"core", "geo", "features", "models", "maps", "pipelines", "configs"},
}
LAYERS = {"geo", "features", "models", "maps", "pipelines", "configs"}


def layer_of(module: str) -> str | None:
    """The layer a ``regenmap...`` module name belongs to (None if not ours)."""
    parts = module.split(".")
    if parts[0] != "regenmap":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module imported by a file (top level and inside functions), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if node.module == "regenmap" and a.name in LAYERS]
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(folder: str) -> None:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imports(path):
            layer = layer_of(module)
            if layer is not None and layer not in ALLOWED[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({layer})")
    assert not bad, "layer rule broken:\n" + "\n".join(bad)


def test_the_rule_is_checked_on_something() -> None:
    """The scan sees the known cross-layer imports (a scan that sees nothing proves nothing)."""
    seen = {layer_of(m) for p in (ROOT / "pipelines").rglob("*.py") for _, m in imports(p)}
    assert {"core", "geo", "features", "models", "maps"} <= seen
    assert layer_of("regenmap.errors") == "core" and layer_of("numpy") is None
