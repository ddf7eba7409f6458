"""Where the shipped non-Python files are: dialplan/, www/, init.d/, templates/, manager/.

Installed, they are package data (asterisk_kit/dialplan, asterisk_kit/www, asterisk_kit/initd);
in a source checkout they are the top-level folders beside the package.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent
_INSTALLED = {"dialplan": "dialplan", "www": "www", "init.d": "initd", "templates": "templates",
              "manager": "manager"}
_SOURCE = {"dialplan": "dialplan", "www": "www", "init.d": "init.d", "templates": "asterisk_kit/templates",
           "manager": "manager"}


def shipped(name: str) -> Path:
    """Folder of shipped files NAME (one of dialplan, www, init.d, templates, manager)."""
    inst = _PKG / _INSTALLED[name]
    if inst.is_dir():
        return inst
    src = _PKG.parent / _SOURCE[name]
    if src.is_dir():
        return src
    raise FileNotFoundError(f"shipped folder {name!r} not found in {_PKG} (broken install?)")
