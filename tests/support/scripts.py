"""Find the console scripts of the interpreter running the tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """Path of console script ``name`` installed beside the running interpreter.

    Looks next to ``sys.executable`` first: under pyenv, ``python -m pip``
    installs scripts there without creating the shim that PATH would find.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name!r} is not installed for {sys.executable}")
    return found
