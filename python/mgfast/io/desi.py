"""DESI coadd-*.fits files: many targets per file, three cameras.

Layout (desispec): HDU 'FIBERMAP' (TARGETID, TARGET_RA, TARGET_DEC, one row per target) and per
camera X in B, R, Z: X_WAVELENGTH (image, vacuum Å), X_FLUX, X_IVAR, X_MASK (images, one row per
target; mask non-zero = bad). A file already combined by desispec (camera 'BRZ') is read as is.
The cameras overlap (B/R near 5800 Å, R/Z near 7600 Å) on a common 0.8 Å grid: where they do, the
flux is the inverse-variance weighted mean of the good pixels and the ivar their sum. R ≈ 2000-5500:
read only with allow_low_resolution=True.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fitsutil import check_inside_file, columns, hdu_by_name, read_image, read_table, require
from .spectrum import (
    ReadError,
    Spectrum,
    as_vacuum_angstrom,
    check_resolution,
    check_wave,
)

RESOLUTION = 3000.0  # B ~2000-3200, R ~3200-4100, Z ~4100-5500
CAMERAS = ("B", "R", "Z")


def is_desi(f: Any) -> bool:
    return any(f"{c}_FLUX" in f for c in (*CAMERAS, "BRZ"))


def combine_cameras(
    waves: list[np.ndarray], fluxes: list[np.ndarray], ivars: list[np.ndarray], where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance combine cameras on a shared wavelength grid: (wave, flux, ivar) with
    flux (N, n); pixels no camera measured get flux 0 and ivar 0."""
    keys = [np.round(w, 3) for w in waves]  # the cameras share pixels to well under 1e-3 Å
    union = np.unique(np.concatenate(keys))
    step = min(float(np.min(np.diff(w))) for w in waves)
    if union.size > 1 and np.min(np.diff(union)) < 0.5 * step:
        raise ReadError(
            f"{where}: the cameras' wavelengths do not line up where they overlap; "
            "resample them onto one grid first"
        )
    n_spec = fluxes[0].shape[0]
    num = np.zeros((n_spec, union.size))
    den = np.zeros((n_spec, union.size))
    for k, f, iv in zip(keys, fluxes, ivars, strict=True):
        idx = np.searchsorted(union, k)
        num[:, idx] += np.where(iv > 0, f * iv, 0.0)
        den[:, idx] += iv
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(den > 0, num / den, 0.0)
    return union, flux.astype(np.float32), den.astype(np.float32)


def read_desi(f: Any, path: str, allow_low_resolution: bool = False) -> list[Spectrum]:
    """Read every target of a DESI coadd file, cameras combined."""
    check_resolution(RESOLUTION, "DESI", allow_low_resolution, path)
    cams = ("BRZ",) if "BRZ_FLUX" in f else tuple(c for c in CAMERAS if f"{c}_FLUX" in f)
    fm = hdu_by_name(f, "FIBERMAP", path)
    check_inside_file(fm, path)
    fcols = columns(fm)
    tid = require(fcols, f"{path}[FIBERMAP]", "TARGETID").name
    ra_c, dec_c = fcols.get("TARGET_RA"), fcols.get("TARGET_DEC")
    fmap = read_table(
        fm, [c for c in (fcols[tid.upper()], ra_c, dec_c) if c is not None], f"{path}[FIBERMAP]"
    )
    n_spec = fmap.size
    if n_spec < 1:
        raise ReadError(f"{path}[FIBERMAP]: no targets")
    waves, fluxes, ivars = [], [], []
    for c in cams:
        hd = {k: hdu_by_name(f, f"{c}_{k}", path) for k in ("WAVELENGTH", "FLUX", "IVAR")}
        for h in hd.values():
            check_inside_file(h, path)
        w = read_image(hd["WAVELENGTH"], f"{path}[{c}_WAVELENGTH]").astype(np.float64).ravel()
        check_wave(w, f"{path}[{c}_WAVELENGTH]", cover=False)
        fl = np.atleast_2d(read_image(hd["FLUX"], f"{path}[{c}_FLUX]")).astype(np.float32)
        iv = np.atleast_2d(read_image(hd["IVAR"], f"{path}[{c}_IVAR]")).astype(np.float32)
        if fl.shape != (n_spec, w.size) or iv.shape != fl.shape:
            raise ReadError(
                f"{path}[{c}_FLUX]: shape {fl.shape} (ivar {iv.shape}); expected "
                f"({n_spec} targets in FIBERMAP, {w.size} wavelengths)"
            )
        iv = np.where(np.isfinite(iv) & np.isfinite(fl) & (iv > 0), iv, 0.0)
        if f"{c}_MASK" in f:
            check_inside_file(f[f"{c}_MASK"], path)
            m = np.atleast_2d(read_image(f[f"{c}_MASK"], f"{path}[{c}_MASK]"))
            if m.shape != fl.shape or m.dtype.kind not in "iub":
                raise ReadError(f"{path}[{c}_MASK]: expected integers of shape {fl.shape}")
            iv = np.where(m == 0, iv, 0.0)
        waves.append(w)
        fluxes.append(np.nan_to_num(fl, nan=0.0, posinf=0.0, neginf=0.0))
        ivars.append(iv)
    if not waves:
        raise ReadError(f"{path}: no camera (B_FLUX, R_FLUX, Z_FLUX or BRZ_FLUX) found")
    wave, flux, ivar = combine_cameras(waves, fluxes, ivars, path)
    wave = as_vacuum_angstrom(wave, "Angstrom", False, path)
    out = []
    for i in range(n_spec):
        meta = {
            "ra": float(fmap[ra_c.name][i]) if ra_c is not None else np.nan,
            "dec": float(fmap[dec_c.name][i]) if dec_c is not None else np.nan,
            "format": "desi",
            "index": i,
        }
        out.append(
            Spectrum(
                wave=wave,
                flux=flux[i],
                ivar=ivar[i],
                id=str(int(fmap[tid][i])),
                resolution=RESOLUTION,
                meta=meta,
            )
        )
    return out


__all__ = ["RESOLUTION", "combine_cameras", "read_desi"]
