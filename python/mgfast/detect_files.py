"""Detection over files (``Detector.detect_files``, ``mgfast detect``): expand the paths, read each
file, detect, and journal the results chunk by chunk, so that a killed run can resume; in this
process or across the workers of a dask cluster. docs/io.md describes the journal and resume."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, io
from .catalog import ABSORBER_PREFIX, Catalog, FileError, concat, rows_for, split_rows
from .detect_dask import chunks_dask
from .file_read import (
    ZemTable,
    expand_paths,
    first_chunk,
    read_or_reason,
    reason,
    with_z_em,
)
from .flags import SpectrumFlag
from .io.spectrum import Spectrum
from .journal import Journal, Outcome

if TYPE_CHECKING:
    from .detector import Detections, Detector

MAX_CHUNK_SPECTRA = 8192  # a local chunk is written once it holds this many spectra
# Input pixels read but not yet searched (2^23: about 360 native-sampled 4MOST spectra, 130 MB
# with their errors and wavelengths): files are searched in batches of at most about this much.
READ_AHEAD_PIXELS = 1 << 23


def _same_grid(a: Spectrum, b: Spectrum) -> bool:
    """Whether two spectra can go through preprocessing in one call: the same wavelengths (the
    same array, or equal values: files of one survey share their grid), the same kind of errors
    and mask, the same normalisation."""
    if (a.err is None, a.ivar is None, a.mask is None, a.normalised, a.resolution is None) != (
        b.err is None, b.ivar is None, b.mask is None, b.normalised, b.resolution is None
    ):  # fmt: skip
        return False
    if a.wave is b.wave:
        return True
    if a.wave is None or b.wave is None or np.shape(a.wave) != np.shape(b.wave):
        return False
    if np.shape(a.flux) != np.shape(b.flux):
        return False
    return bool(np.array_equal(a.wave, b.wave))


def _groups(spectra: list[Spectrum]) -> Iterator[list[Spectrum]]:
    """Runs of consecutive spectra that can go through preprocessing in one call (_same_grid)."""
    run: list[Spectrum] = []
    for s in spectra:
        if run and not _same_grid(s, run[0]):
            yield run
            run = []
        run.append(s)
    if run:
        yield run


def _detect_group(det: Detector, g: list[Spectrum]) -> Detections:
    """One Detector call for spectra that _same_grid groups together."""
    s0 = g[0]

    def stack(attr: str) -> np.ndarray | None:
        return None if getattr(s0, attr) is None else np.stack([getattr(s, attr) for s in g])

    res = None if s0.resolution is None else np.array([s.resolution for s in g])
    z_em = np.array([float(s.meta.get("z_em", np.nan)) for s in g])
    flux = stack("flux")
    assert flux is not None
    return det.detect(
        flux, wave=s0.wave, err=stack("err"), ivar=stack("ivar"), mask=stack("mask"),
        resolution=res, normalised=s0.normalised,
        z_em=z_em if np.isfinite(z_em).any() else None,
    )  # fmt: skip


def _rows(d: Detections, g: list[Spectrum], file: str) -> dict[str, np.ndarray]:
    index = [int(s.meta.get("index", 0)) for s in g]
    return rows_for(d, [s.id for s in g], file, index, [s.ra for s in g], [s.dec for s in g])


def detect_spectra(det: Detector, spectra: list[Spectrum], file: str) -> dict[str, np.ndarray]:
    """Catalogue columns for the spectra of one file (and its absorber rows, with a
    multi-absorber model)."""
    parts = [_rows(_detect_group(det, g), g, file) for g in _groups(spectra)]
    return concat(parts, multi=det.multi_absorber)


class _Job:
    """The spectra of one file's outcome (or of a per-arm group's), read and waiting to be
    searched: ``file`` labels their rows, ``path`` names them in an error."""

    def __init__(self, spectra: list[Spectrum], file: str, path: str) -> None:
        self.spectra, self.file, self.path = spectra, file, path


def _search_jobs(det: Detector, items: list[Outcome | _Job]) -> list[Outcome]:
    """Search the jobs among ``items`` together: runs of consecutive spectra on one grid, across
    files, go through the Detector in one call (files of one survey share their grid, so a chunk
    of single-spectrum files is one batch on every core rather than a call per file). A batch
    that fails is searched again file by file, so that only the bad file is lost."""
    jobs = [(k, it) for k, it in enumerate(items) if isinstance(it, _Job)]
    flat = [(k, j, s) for k, job in jobs for j, s in enumerate(job.spectra)]
    parts: dict[int, list[dict[str, np.ndarray]]] = {k: [] for k, _ in jobs}
    failed: set[int] = set()
    at = 0
    for g in _groups([s for _, _, s in flat]):
        members = flat[at : at + len(g)]
        at += len(g)
        rows: list[tuple[int, dict[str, np.ndarray]]] = []
        try:
            d = _detect_group(det, g)
            start = 0
            while start < len(members):  # the rows of each job in this batch
                k = members[start][0]
                stop = start
                while stop < len(members) and members[stop][0] == k:
                    stop += 1
                job = items[k]
                assert isinstance(job, _Job)
                rows.append((k, _rows(d.rows(start, stop), g[start:stop], job.file)))
                start = stop
        except Exception:  # search these files one by one: the bad one fails alone
            failed.update(k for k, _, _ in members)
            continue
        for k, r in rows:
            parts[k].append(r)
    out: list[Outcome] = []
    for k, it in enumerate(items):
        if not isinstance(it, _Job):
            out.append(it)
        elif k in failed:
            out.append(_search(det, it.spectra, it.file, it.path))
        else:
            out.append((concat(parts[k], multi=det.multi_absorber), None))
    return out


def _search(det: Detector, spectra: list[Spectrum], file: str, path: str) -> Outcome:
    try:
        return detect_spectra(det, spectra, file), None
    except Exception as e:  # one bad file must never stop a run
        return None, reason(e, path)


def process_file(
    det: Detector, path: str, format: str | None, allow_low_resolution: bool
) -> Outcome:
    """Read and search one file: its columns, or the reason it failed."""
    return process_unit(det, [path], format, allow_low_resolution)[0]


def process_unit(
    det: Detector, files: Sequence[str], format: str | None, allow_low_resolution: bool,
    z_em: ZemTable = None,
) -> list[Outcome]:  # fmt: skip
    """Read and search one unit of work (_Batcher.add): one outcome per file."""
    return process_units(det, [files], format, allow_low_resolution, z_em)


class _Batcher:
    """Read units and search their spectra together (_search_jobs), holding at most about
    READ_AHEAD_PIXELS input pixels read but not yet searched: a chunk of many large files is
    searched in several batches, never all in memory at once."""

    def __init__(
        self, det: Detector, format: str | None, allow_low: bool, z_em: ZemTable = None,
        journal: Journal | None = None,
    ) -> None:  # fmt: skip
        self.det, self.format, self.allow_low, self.z_em = det, format, allow_low, z_em
        self.journal = journal  # a big file's progress is journalled chunk by chunk
        self.pending: list[Outcome | _Job] = []
        self.done: list[Outcome] = []
        self.pixels = 0

    def add(self, unit: Sequence[str]) -> int:
        """Reads a unit; returns its number of spectra. A single file of more than
        FILE_CHUNK_SPECTRA spectra is read and searched a chunk at a time (_search_big)."""
        multi = self.det.multi_absorber
        if len(unit) == 1:
            key = os.path.abspath(unit[0])
            done = self.journal.load_parts(key) if self.journal is not None else []
            start = sum(len(c["probability"]) for c in done)
            first, rest = first_chunk(unit[0], self.format, self.allow_low, start)
            if rest is not None or (done and not isinstance(first, str)):
                return self._search_big(unit[0], first, rest, done)  # type: ignore[arg-type]
            items: list[Outcome | _Job] = [
                (None, first) if isinstance(first, str)
                else _Job(with_z_em(first, unit[0], self.z_em), unit[0], unit[0])  # type: ignore[arg-type]
            ]  # fmt: skip
        else:
            items = read_unit(unit, self.format, self.allow_low, multi, z_em=self.z_em)
        self.pending += items
        jobs = [it for it in items if isinstance(it, _Job)]
        self.pixels += sum(int(np.size(s.flux)) for job in jobs for s in job.spectra)
        if self.pixels >= READ_AHEAD_PIXELS:
            self.flush()
        return sum(len(job.spectra) for job in jobs)

    def _search_big(
        self, path: str, first: list[Spectrum], rest: Iterator[list[Spectrum]] | None,
        done: list[dict[str, np.ndarray]],
    ) -> int:  # fmt: skip
        """A big file: what is pending is searched first, then the file chunk by chunk, its
        rows joined into its one outcome (or its error: a chunk that cannot be read or searched
        makes the whole file an error row, as a bad small file is). With a journal each chunk's
        rows are journalled as a part; ``done``: the parts a killed run left (the file is read
        from after them)."""
        self.flush()
        parts, n, why = list(done), 0, None
        key = os.path.abspath(path)
        try:
            for chunk in itertools.chain([first], rest or ()):
                if not chunk:  # resumed after the file's last part: nothing left to read
                    continue
                n += len(chunk)
                chunk = with_z_em(chunk, path, self.z_em)  # type: ignore[assignment]
                out, why = _search_jobs(self.det, [_Job(chunk, path, path)])[0]
                if why is not None or out is None:
                    break
                if self.journal is not None:
                    self.journal.write_part(key, len(parts), out)
                parts.append(out)
        except Exception as e:  # a read error after some chunks: the file is an error row
            why = reason(e, path)
        finally:
            if rest is not None:
                rest.close()  # type: ignore[attr-defined]
        multi = self.det.multi_absorber
        self.done.append((None, why) if why is not None else (concat(parts, multi=multi), None))
        return n

    def flush(self) -> None:
        self.done += _search_jobs(self.det, self.pending)
        self.pending, self.pixels = [], 0

    def outcomes(self) -> list[Outcome]:
        """All outcomes so far, in order (everything read is searched first); then empty."""
        self.flush()
        out, self.done = self.done, []
        return out


def process_units(
    det: Detector, units: Sequence[Sequence[str]], format: str | None, allow_low: bool,
    z_em: ZemTable = None,
) -> list[Outcome]:  # fmt: skip
    """Read several units and search their spectra together (_Batcher): what a chunk of work
    does, locally or on a dask worker. One outcome per file, in order."""
    b = _Batcher(det, format, allow_low, z_em)
    for unit in units:
        b.add(unit)
    return b.outcomes()


def read_unit(
    files: Sequence[str], format: str | None, allow_low_resolution: bool, multi: bool,
    *, z_em: ZemTable = None,
) -> list[Outcome | _Job]:  # fmt: skip
    """Read a unit of several files (io.group_arm_files: the per-arm 4MOST files of one object;
    a single file goes through _Batcher.add, which reads a big one a chunk at a time). Returns
    per file its outcome (an error) or a _Job to search, or nothing (a per-arm file in its
    group's row). The per-arm spectra of a group are combined
    (io.combine_arms) into one row, whose ``file`` is their files joined by ';' in wavelength
    order; the row is the outcome of the first of them in input order, the others have no rows
    of their own. A file of the group that fails is an error of its own; one that is not a
    single per-arm spectrum (a joined file of the same object, say) gives its rows as alone. Two
    files of one arm make the object an error (on its first file) naming both."""
    outcomes: list[Outcome | _Job | None] = [None] * len(files)
    arms: list[tuple[int, Spectrum]] = []
    for i, f in enumerate(files):
        spectra = with_z_em(read_or_reason(f, format, allow_low_resolution), f, z_em)
        if isinstance(spectra, str):  # this arm is lost; the others still make a row
            outcomes[i] = (None, spectra)
            continue
        if len(spectra) == 1 and spectra[0].meta.get("arm") in io.arms.ARM_NAMES:
            arms.append((i, spectra[0]))
        else:
            outcomes[i] = _Job(spectra, f, f)
    if arms:
        members = [i for i, _ in arms]
        first = members[0]
        try:
            spectrum, order = io.combine_arms([s for _, s in arms], [files[i] for i in members])
        except Exception as e:  # every file of the object gets this error, under its own name
            why = reason(e, "") + " (--no-merge-arms searches each arm file alone)"
            for i in members:
                outcomes[i] = (None, why)
        else:
            label = ";".join(files[members[j]] for j in order)
            outcomes[first] = _Job([spectrum], label, files[first])
            for i in members[1:]:
                outcomes[i] = (concat([], multi=multi), None)  # in the first's row
    return [o for o in outcomes if o is not None]


def _chunks_local(
    det: Detector, units: list[tuple[str, ...]], format: str | None, allow_low: bool,
    files_per_chunk: int, z_em: ZemTable = None, journal: Journal | None = None,
) -> Iterator[tuple[list[str], list[Outcome]]]:  # fmt: skip
    names: list[str] = []
    batcher = _Batcher(det, format, allow_low, z_em, journal)  # a chunk's spectra searched together
    n_spec = 0
    for unit in units:  # a unit is never split across chunks
        n_spec += batcher.add(unit)
        names += unit
        if len(names) >= files_per_chunk or n_spec >= MAX_CHUNK_SPECTRA:
            yield names, batcher.outcomes()
            names, n_spec = [], 0
    if names:
        yield names, batcher.outcomes()


def detect_files(
    det: Detector,
    paths: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    allow_low_resolution: bool = False,
    journal: str | Path | None = None,
    resume: bool = False,
    dask: str | None = None,
    files_per_chunk: int = 64,
    merge_arms: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
    on_error: Callable[[str, str], None] | None = None,
    command: str = "",
    z_em: ZemTable = None,
) -> Catalog:
    """``Detector.detect_files``: see its docstring."""
    if format is not None and format not in io.FORMATS:
        raise ValueError(f"format: expected one of {', '.join(io.FORMATS)}, got {format!r}")
    if files_per_chunk < 1:
        raise ValueError(f"files_per_chunk: must be at least 1, got {files_per_chunk}")
    files = expand_paths(paths)
    if not files:
        raise ValueError("no input files (the directories hold no spectrum files)")
    sha = det.model.sha256 if det.model is not None else ""
    settings = {
        "method": det.method, "threshold": det.threshold, "model_sha256": sha, "format": format,
        "mgfast_version": __version__, "merge_arms": bool(merge_arms),
    }  # fmt: skip
    if det.absorber_threshold is not None:
        settings["absorber_threshold"] = det.absorber_threshold
    if det.model_name is not None:
        settings["model"] = det.model_name
    if z_em is not None:  # a resumed run must use the same table
        table = json.dumps(sorted((str(k), float(v)) for k, v in z_em.items()))
        settings["z_em_table_sha256"] = hashlib.sha256(table.encode()).hexdigest()
    jr = Journal(journal, settings, resume) if journal is not None else None
    done = jr.load() if jr is not None else {}
    if det.multi_absorber:  # results journalled without absorber rows are searched again
        done = {
            k: v for k, v in done.items()
            if v[1][0] is None or ABSORBER_PREFIX + "spectrum" in v[1][0]
        }  # fmt: skip
    keys = [os.path.abspath(f) for f in files]
    # The per-arm 4MOST files of one object are one unit, searched and journalled together.
    units = io.group_arm_files(files, format) if merge_arms else [(f,) for f in files]
    todo = [u for u in units if not all(os.path.abspath(f) in done for f in u)]
    results: dict[str, Outcome] = {k: v[1] for k, v in done.items()}
    n_files = len(files) - sum(len(u) for u in todo)
    n_spec = sum(len(c["probability"]) for c, _ in results.values() if c is not None)
    if progress:
        progress(n_files, len(files), n_spec)
    if dask:
        chunks = chunks_dask(
            det, dask, todo, format, allow_low_resolution, files_per_chunk, dict(z_em or {}) or None
        )
    else:
        chunks = _chunks_local(
            det, todo, format, allow_low_resolution, files_per_chunk, z_em, journal=jr
        )
    warned = False
    for names, outcomes in chunks:
        if jr is not None:
            jr.write(names, outcomes)
        for f, out in zip(names, outcomes, strict=True):
            results[os.path.abspath(f)] = out
            if out[1] is not None and on_error:
                on_error(f, out[1])
            n_spec += 0 if out[0] is None else len(out[0]["probability"])
            if out[0] is not None and not warned and allow_low_resolution:
                if np.any(out[0]["flags"] & int(SpectrumFlag.LOW_RESOLUTION)):
                    warnings.warn(
                        "searching spectra far coarser than R = 20000 (the model was trained at "
                        "R = 20000): expect lower completeness; rows carry LOW_RESOLUTION",
                        io.LowResolutionWarning, stacklevel=2,
                    )  # fmt: skip
                    warned = True
        n_files += len(names)
        if progress:
            progress(n_files, len(files), n_spec)
    parts, errors = [], []
    for f, k in zip(files, keys, strict=True):
        cols, reason = results[k]
        if cols is None:
            errors.append(FileError(f, reason or "unknown error"))
        else:
            parts.append(cols)
    meta = {
        **settings, "command": command, "n_files": len(files),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    rows, absorbers = split_rows(concat(parts, multi=det.multi_absorber))
    return Catalog(rows, tuple(errors), meta, absorbers)


__all__ = [
    "Journal",
    "detect_files",
    "expand_paths",
    "process_file",
    "process_unit",
    "process_units",
]
