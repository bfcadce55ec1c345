"""Type-check the package as it is installed: ``regenmap.geo`` etc., not loose folders.

The layers live in sibling folders that setuptools maps into one namespace;
mypy cannot follow that mapping through an editable install. This script
builds a tree of symbolic links with the installed layout under
``build/typecheck/`` and runs mypy on the package ``regenmap`` there.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_tree() -> Path:
    """Create ``build/typecheck/regenmap`` mirroring ``[tool.setuptools.package-dir]``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    base = ROOT / "build" / "typecheck"
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        target = base.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in (ROOT / folder).glob("*.py*"):
            if source.suffix not in (".py", ".pyi"):
                continue
            link = target / source.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source)
        for stale in target.glob("*.py"):
            if stale.is_symlink() and not stale.resolve().exists():
                stale.unlink()
    return base


def main() -> int:
    """Build the tree and run mypy; return its exit code."""
    base = build_tree()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
           "-p", "regenmap", *sys.argv[1:]]
    return subprocess.call(cmd, cwd=base)


if __name__ == "__main__":
    sys.exit(main())
