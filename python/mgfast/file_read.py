"""Reading the files of a run: paths expanded, each file read whole or, when big, a chunk at a
time; a file that cannot be read gives the reason, never an exception."""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import io
from .io.spectrum import Spectrum

ZemTable = Mapping[str, float] | None  # z_em by spectrum id or file name (--zem)


SPECTRUM_SUFFIXES = (
    ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".npz", ".npy", ".h5", ".hdf5",
)  # fmt: skip


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[str]:
    """Files, directories (their spectrum files, recursively, sorted) and glob patterns → files,
    each once, in the order given. A path that does not exist, or a pattern that matches no
    file, stays in as it is: it becomes an error row (every input is accounted for)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[str] = []
    for p in map(str, paths):
        if os.path.isdir(p):
            found = [
                os.path.join(root, name)
                for root, dirs, names in os.walk(p)
                for name in names
                if name.lower().endswith(SPECTRUM_SUFFIXES) and not name.startswith(".")
            ]
            out += sorted(found)
        elif not os.path.exists(p) and glob.has_magic(p):
            hits = [h for h in sorted(glob.glob(p, recursive=True)) if os.path.isfile(h)]
            out += hits or [p]  # no match: the pattern's error row says so
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def reason(e: BaseException, path: str) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    if msg.startswith(path):
        msg = msg[len(path) :].lstrip(": ")
    if isinstance(e, OSError | MemoryError) or not isinstance(e, ValueError):
        msg = f"{type(e).__name__}: {msg}"
    return msg if len(msg) <= 500 else msg[:497] + "..."


def _read(path: str, format: str | None, allow_low_resolution: bool) -> list[Spectrum]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", io.LowResolutionWarning)  # the run warns once
        return io.read(path, format, allow_low_resolution=allow_low_resolution)


def with_z_em(spectra: list[Spectrum] | str, file: str, z_em: ZemTable) -> list[Spectrum] | str:
    """Each spectrum's z_em from the table (by its id, else by its file's name, else by its
    file's name without extensions), over what its file says (meta['z_em'])."""
    if z_em is None or isinstance(spectra, str):
        return spectra
    name = os.path.basename(file)
    for s in spectra:
        for key in (s.id, name, name.split(".")[0]):
            if key in z_em:
                s.meta["z_em"] = float(z_em[key])
                break
    return spectra


def read_or_reason(path: str, format: str | None, allow_low: bool) -> list[Spectrum] | str:
    """A file's spectra, or the reason it cannot be read: one bad file must never stop a run
    (a low-resolution file without allow_low_resolution included: its reason says so)."""
    if not os.path.exists(path) and glob.has_magic(path):
        return "the pattern matches no file"
    try:
        return _read(path, format, allow_low)
    except Exception as e:
        return reason(e, path)


FILE_CHUNK_SPECTRA = 512  # a file with more spectra is read and searched this many at a time


def first_chunk(
    path: str, format: str | None, allow_low: bool, start: int = 0
) -> tuple[list[Spectrum] | str, Iterator[list[Spectrum]] | None]:
    """A file's spectra (or the reason it cannot be read) and None; or, for a file of more than
    FILE_CHUNK_SPECTRA spectra, its first chunk and an iterator over the others (io.iter_read:
    a table file is read row by row, so a big file is never held whole)."""
    if not os.path.exists(path) and glob.has_magic(path):
        return "the pattern matches no file", None
    chunks = io.iter_read(
        path, format, allow_low_resolution=allow_low, chunk=FILE_CHUNK_SPECTRA, start=start
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", io.LowResolutionWarning)  # the run warns once
            first = next(chunks, [])
            if len(first) < FILE_CHUNK_SPECTRA:
                return first, None
            second = next(chunks, None)
    except Exception as e:
        chunks.close()  # type: ignore[attr-defined]  # io.iter_read is a generator
        return reason(e, path), None
    if second is None:
        return first, None

    def rest() -> Iterator[list[Spectrum]]:
        yield second
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", io.LowResolutionWarning)
            yield from chunks

    return first, rest()
