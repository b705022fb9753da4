"""Simulated sets on disk: one HDF5 file with chunked flux and err, the grid, the truth table and
the configuration that regenerates it (seed and parameters: any spectrum can be recomputed)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, grid
from .simulate import Simulation

FORMAT = "mgfast-simulation-1"


def write_simulation(
    path: str | Path,
    batches: Iterable[Simulation],
    n: int,
    config: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write consecutive batches (n spectra in all) to ``path``; returns the number written.

    The file is written to ``path + '.partial'`` and renamed when complete, so that a file at
    ``path`` is always whole.
    """
    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    chunk = (max(1, min(n, 1024)), grid.N_PIX)
    done = 0
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["mgfast_version"] = __version__
        f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        f.attrs["config"] = json.dumps(config, sort_keys=True)
        f.create_dataset("wavelength", data=grid.wavelength())
        flux = f.create_dataset("flux", (n, grid.N_PIX), np.float32, chunks=chunk)
        err = f.create_dataset("err", (n, grid.N_PIX), np.float32, chunks=chunk)
        truth_group = f.create_group("truth")
        for b in batches:
            k = len(b)
            flux[done : done + k] = b.flux
            err[done : done + k] = b.err
            for name, col in b.truth.columns().items():
                col = np.asarray(col)
                if name not in truth_group:
                    truth_group.create_dataset(
                        name, (n, *col.shape[1:]), col.dtype, chunks=(chunk[0], *col.shape[1:])
                    )
                truth_group[name][done : done + k] = col
            done += k
            if progress:
                progress(done)
    if done != n:
        tmp.unlink()
        raise RuntimeError(f"{path}: wrote {done} spectra of {n}")
    tmp.replace(path)
    return done


def read_simulation(path: str | Path, start: int = 0, stop: int | None = None) -> dict[str, Any]:
    """Read spectra start..stop of a file written by ``write_simulation``: a dict with flux, err,
    wavelength, truth (dict of arrays) and config."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not an mgfast simulation file (format {FORMAT!r} expected)")
        sl = slice(start, stop)
        return {
            "flux": f["flux"][sl],
            "err": f["err"][sl],
            "wavelength": f["wavelength"][:],
            "truth": {k: v[sl] for k, v in f["truth"].items()},
            "config": json.loads(f.attrs["config"]),
        }


__all__ = ["FORMAT", "read_simulation", "write_simulation"]
