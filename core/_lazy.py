"""Lazy public names for the layers' ``__init__`` modules (import on first use)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` that imports ``exports[name]`` when ``name`` is first used.

    Parameters
    ----------
    package
        Name of the package, for the error message.
    exports
        Public name -> module defining it.
    """

    def module_getattr(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return module_getattr
