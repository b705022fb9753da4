"""The run journal of detect_files: results on disk as they come, so that a killed run resumes
(docs/io.md)."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._fileutil import atomic_write
from .catalog import ABSORBER_PREFIX, concat, split_rows

# One file's outcome: its catalogue columns, or the reason it has none. With a multi-absorber
# model the columns include the file's absorber rows (catalog.ABSORBER_PREFIX, catalog.split_rows).
Outcome = tuple[dict[str, np.ndarray] | None, str | None]


class Journal:
    """Results on disk as they come: ``run.json`` (the settings) and ``chunk-NNNNNN.npz`` files,
    each written to a temporary file, flushed and renamed, so that a chunk is whole or absent.
    A chunk holds its files' rows (``col_*``, ``nrows`` per file) and, with a multi-absorber
    model, their absorber rows (``abs_*``, ``nabs`` per file) in the same npz."""

    def __init__(
        self, directory: str | Path, settings: dict[str, Any] | None = None, resume: bool = True
    ) -> None:
        """Open (``settings`` None: only to load) or start a journal; a run's journal is resumed
        only with ``resume`` and the same settings."""
        self.dir = Path(directory)
        run = self.dir / "run.json"
        self.next = 1 + max((int(p.stem.split("-")[1]) for p in self._chunks()), default=-1)
        if settings is None:
            return
        if self.dir.exists() and not resume:
            raise ValueError(
                f"{self.dir}: holds the partial results of an earlier run; pass --resume "
                "(resume=True) to finish it, or delete the directory to start again"
            )
        if run.exists():
            old = json.loads(run.read_text())
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            if diff:
                what = ", ".join(f"{k} {old.get(k)!r} then, {settings[k]!r} now" for k in diff)
                raise ValueError(
                    f"{self.dir}: cannot resume a run made with other settings ({what}); "
                    "use the same settings, or delete the directory to start again"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):  # a write cut short by a kill
            stale.unlink()
        if not run.exists():
            self._write_bytes(run, json.dumps(settings, sort_keys=True, indent=1).encode())

    def _chunks(self) -> list[Path]:
        return sorted(self.dir.glob("chunk-*.npz"))

    @staticmethod
    def _write_bytes(path: Path, data: bytes) -> None:
        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        atomic_write(path, write, durable=True)

    @staticmethod
    def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Written to a hidden temporary file, flushed to disk and renamed: whole or absent."""

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a path would get ".npz" appended
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle

        atomic_write(path, write, durable=True)

    def load(self) -> dict[str, tuple[str, Outcome]]:
        """Outcomes already on disk, by absolute path: (file as given, outcome)."""
        out: dict[str, tuple[str, Outcome]] = {}
        for p in self._chunks():
            try:
                with np.load(p, allow_pickle=False) as z:
                    d = {k: z[k] for k in z.files}
            except Exception as e:  # cannot happen with atomic writes; redo its files if it does
                warnings.warn(f"{p}: unreadable ({e}); its files will be searched again",
                              stacklevel=2)  # fmt: skip
                continue
            start = a_start = 0
            cols = {k[4:]: v for k, v in d.items() if k.startswith("col_")}
            absorbers = {k[4:]: v for k, v in d.items() if k.startswith("abs_")}
            nabs = d.get("nabs", np.zeros(len(d["files"]), np.int64))
            for f, key, n, na, reason in zip(d["files"], d["keys"], d["nrows"], nabs,
                                             d["reasons"], strict=True):  # fmt: skip
                if n < 0:
                    out[str(key)] = (str(f), (None, str(reason)))
                    continue
                rows = {k: v[start : start + n] for k, v in cols.items()}
                if "nabs" in d:  # the file's absorbers, their `spectrum` back to its own rows
                    for k, v in absorbers.items():
                        a = v[a_start : a_start + na]
                        rows[ABSORBER_PREFIX + k] = a - start if k == "spectrum" else a
                    a_start += int(na)
                out[str(key)] = (str(f), (rows, None))
                start += int(n)
        return out

    def write(self, files: list[str], outcomes: list[Outcome]) -> None:
        nrows = [-1 if c is None else len(c["probability"]) for c, _ in outcomes]
        rows, absorbers = split_rows(concat([c for c, _ in outcomes if c is not None]))
        arrays = {
            "files": np.array(files, dtype=str),
            "keys": np.array([os.path.abspath(f) for f in files], dtype=str),
            "nrows": np.array(nrows, np.int64),
            "reasons": np.array([r or "" for _, r in outcomes], dtype=str),
            **{f"col_{k}": v for k, v in rows.items()},
        }
        if absorbers is not None:  # one chunk, one file: rows and absorbers stay together
            key = ABSORBER_PREFIX + "spectrum"
            arrays["nabs"] = np.array([-1 if c is None else len(c[key]) for c, _ in outcomes])
            arrays |= {f"abs_{k}": v for k, v in absorbers.items()}
        self._save_npz(self.dir / f"chunk-{self.next:06d}.npz", arrays)
        self.next += 1
        self.drop_parts([os.path.abspath(f) for f in files])

    # A big file's progress (_Batcher._search_big): the rows of each chunk of its spectra as it
    # is searched, parts/<file key hash>-<k>.npz, so that a killed run resumes inside the file.
    # They are dropped once the file's whole outcome is in a chunk (write).

    def _part_stem(self, key: str) -> Path:
        return self.dir / "parts" / hashlib.sha1(key.encode()).hexdigest()[:20]

    def _part_paths(self, key: str) -> list[Path]:
        stem = self._part_stem(key)
        return sorted(stem.parent.glob(f"{stem.name}-*.npz"))

    def write_part(self, key: str, k: int, cols: dict[str, np.ndarray]) -> None:
        """Part k of the file ``key`` (its rows, and absorbers with a multi-absorber model)."""
        rows, absorbers = split_rows(cols)
        arrays = {"key": np.array(key), **{f"col_{n}": v for n, v in rows.items()}}
        if absorbers is not None:
            arrays |= {f"abs_{n}": v for n, v in absorbers.items()}
        stem = self._part_stem(key)
        stem.parent.mkdir(exist_ok=True)
        self._save_npz(stem.with_name(f"{stem.name}-{k:06d}.npz"), arrays)

    def load_parts(self, key: str) -> list[dict[str, np.ndarray]]:
        """The parts of the file ``key`` written so far, in order (the first k contiguous)."""
        out: list[dict[str, np.ndarray]] = []
        for k, p in enumerate(self._part_paths(key)):
            if not p.name.endswith(f"-{k:06d}.npz"):
                break
            try:
                with np.load(p, allow_pickle=False) as z:
                    d = {n: z[n] for n in z.files}
            except Exception:  # cannot happen with atomic writes: search from here on
                break
            if str(d["key"]) != key:
                break
            cols = {n[4:]: v for n, v in d.items() if n.startswith("col_")}
            cols |= {ABSORBER_PREFIX + n[4:]: v for n, v in d.items() if n.startswith("abs_")}
            out.append(cols)
        return out

    def drop_parts(self, keys: Sequence[str]) -> None:
        for key in keys:
            for p in self._part_paths(key):
                p.unlink()

    def remove(self) -> None:
        for p in sorted(self.dir.rglob("*"), reverse=True):  # files first, then parts/
            p.rmdir() if p.is_dir() else p.unlink()
        self.dir.rmdir()
