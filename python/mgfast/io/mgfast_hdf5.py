"""mgfast's own simulated sets (``mgfast simulate -o set.h5``, mgfast.io_hdf5): continuum-
normalised flux and its errors on the grid, one spectrum per row, id ``set.h5[i]``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .spectrum import ReadError, Spectrum, check_wave

FORMAT_ATTR = "mgfast-simulation-1"  # mgfast.io_hdf5.FORMAT (not imported: it loads the simulator)


def is_hdf5(path: str) -> bool:
    """Whether a file is an HDF5 file (its signature), whatever it holds."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _check_stored(d: Any, where: str) -> None:
    """Refuse a dataset whose shape claims far more data than the file stores for it (a corrupt
    shape would otherwise be read as fill values, all of it allocated)."""
    if not hasattr(d, "shape") or d.shape is None:
        raise ReadError(f"{where}: not a dataset")
    need = int(np.prod(d.shape, dtype=object)) * d.dtype.itemsize
    stored = int(d.id.get_storage_size())
    if need > 64 * stored + (1 << 20):
        raise ReadError(
            f"{where}: shape {d.shape} of {d.dtype} ({need:,} bytes) but {stored:,} bytes stored "
            "(corrupt?)"
        )


def read_mgfast_hdf5(path: str, allow_low_resolution: bool = False) -> list[Spectrum]:
    """Every spectrum of a simulated set (its grid, flux and err datasets)."""
    try:
        import h5py
    except ImportError:
        raise ReadError(f"{path}: reading HDF5 needs h5py (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if fmt != FORMAT_ATTR:
                raise ReadError(
                    f"{path}: an HDF5 file but not an mgfast simulated set (format {fmt!r}); "
                    "mgfast reads the sets `mgfast simulate` writes"
                )
            missing = [k for k in ("wavelength", "flux", "err") if k not in f]
            if missing:
                raise ReadError(f"{path}: no dataset {', '.join(missing)}")
            for k in ("wavelength", "flux", "err"):
                _check_stored(f[k], f"{path}[{k}]")
            wave: Any = np.asarray(f["wavelength"][()], np.float64)
            check_wave(wave, f"{path}[wavelength]")
            flux, err = f["flux"], f["err"]
            if flux.ndim != 2 or flux.shape != err.shape or flux.shape[1] != wave.size:
                raise ReadError(
                    f"{path}: flux {flux.shape}, err {err.shape} and wavelength {wave.shape} "
                    "do not match"
                )
            f32 = [np.asarray(flux[i], np.float32) for i in range(flux.shape[0])]
            e32 = [np.asarray(err[i], np.float32) for i in range(err.shape[0])]
    except ReadError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ReadError(f"{path}: unreadable HDF5 ({' '.join(str(e).split())})") from None
    name = path.rsplit("/", 1)[-1]
    meta = {"format": "mgfast-hdf5"}
    return [
        Spectrum(wave, fl, er, id=f"{name}[{i}]", normalised=True, meta={**meta, "index": i})
        for i, (fl, er) in enumerate(zip(f32, e32, strict=True))
    ]


__all__ = ["is_hdf5", "read_mgfast_hdf5"]
