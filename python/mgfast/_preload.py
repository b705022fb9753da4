"""Loads oneDNN's shared library from wherever pip put the onednn-cpu-gomp wheel, before the
compiled core needs it: the core's RPATH finds it in the usual layouts, but not when the wheel
sits in another prefix (e.g. a virtualenv built on system site-packages that hold oneDNN)."""

from __future__ import annotations

import ctypes
import importlib.metadata
import sys
from pathlib import Path


def preload_onednn() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        files = importlib.metadata.files("onednn-cpu-gomp") or []
    except importlib.metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libdnnl.so.3":
            try:
                ctypes.CDLL(str(Path(f.locate()).resolve()), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass  # the core reports a missing backend itself, with what to do
            return
