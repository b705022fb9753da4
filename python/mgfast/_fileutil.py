"""The one atomic file write of the package (catalogues, the run journal)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], *, durable: bool = False) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, then rename it over
    ``path``: readers see the old file or the whole new one, never a part. ``durable``: flush the
    temporary file to disk before the rename, so that it survives a crash of the machine too (the
    journal of a run that must resume). The temporary file is removed if ``write`` fails; one
    left by a killed process matches ``.*.tmp``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
