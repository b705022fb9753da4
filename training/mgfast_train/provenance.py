"""Where a result came from: the CPU and the commit (a dirty tree said so)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def cpu_name() -> str:
    from mgfast.bench import cpu_name as name

    return name()


def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]  # the checkout (editable install)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
