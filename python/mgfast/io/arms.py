"""Per-arm 4MOST files of one object, merged into one spectrum (docs/io.md, "Per-arm files").

``object_key`` says, from a file's headers only, which object a per-arm 4MOST file holds;
``group_arm_files`` groups a run's per-arm files by it (deterministically: groups in the order of
their first file, files in input order); ``combine_arms`` concatenates the arms' spectra in
wavelength order into one spectrum.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import grid
from .fitsutil import columns, open_fits, read_cell, require
from .formats import NUMPY_SUFFIXES, _fits_format
from .fourmost import arm_name, spectrum_hdu
from .spectrum import ReadError, Spectrum, header_str, wave_factor

# The header keywords that name the object of a per-arm file, first present wins.
OBJECT_KEYS: tuple[str, ...] = ("OBJ_UID", "OBJ_NAME", "OBJECT")
ARM_NAMES: tuple[str, ...] = tuple(a.name for a in grid.ARMS)  # blue, green, red


def object_key(path: str | Path, format: str | None = None) -> str | None:
    """``'KEYWORD=value'`` of the object a per-arm 4MOST file may hold (OBJ_UID, else OBJ_NAME,
    else OBJECT of the primary header), read from the headers only; None when the file cannot be
    one of several arms of an object: not a 4MOST file (or ``format`` is another one), not one
    table row, an ``ARM`` keyword that is not blue/green/red, no object keyword, or a file that
    does not open (it is then read on its own and fails as usual)."""
    return _header_key(path, format)[0]


def _header_key(path: str | Path, format: str | None) -> tuple[str | None, bool]:
    """(object_key, whether the ARM keyword names the arm)."""
    p = str(path)
    if format not in (None, "4most") or p.lower().endswith(NUMPY_SUFFIXES):
        return None, False
    try:
        with open_fits(p) as f:
            if format is None and _fits_format(f) != "4most":
                return None, False
            hdr0 = f[0].read_header()
            if spectrum_hdu(f, p).get_nrows() != 1:
                return None, False
    except Exception:  # unreadable headers: the reader reports it for this file alone
        return None, False
    arm = header_str(hdr0, "ARM").lower()
    if arm and arm not in ARM_NAMES:
        return None, False
    for k in OBJECT_KEYS:
        v = header_str(hdr0, k)
        if v:
            return f"{k}={v}", bool(arm)
    return None, False


def _wave_arm(path: str) -> str:
    """The arm of a 4MOST file from its WAVE column alone ('joined' for several or none)."""
    try:
        with open_fits(path) as f:
            hdu = spectrum_hdu(f, path)
            where = f"{path}[{hdu.get_extnum()}]"
            col = require(columns(hdu), where, "WAVE")
            w = read_cell(hdu, col, 0, where).astype(np.float64) * wave_factor(col.unit, where)
    except Exception:
        return ""
    w = w[np.isfinite(w)]
    return arm_name(w) if w.size else ""


def group_arm_files(files: Sequence[str], format: str | None = None) -> list[tuple[str, ...]]:
    """The files as units of work: a tuple per object for the per-arm 4MOST files that share an
    ``object_key``, in input order, placed where the object's first file is; every other file
    alone. Only the headers are read, except that a file whose object key others share and
    whose header has no ``ARM`` keyword has its WAVE column read to tell a per-arm file from a
    joined one (a joined file stays alone)."""
    info = [_header_key(f, format) for f in files]
    count = Counter(k for k, _ in info if k is not None)
    keys = [
        k if k is None or count[k] < 2 or arm_known or _wave_arm(f) in ARM_NAMES else None
        for f, (k, arm_known) in zip(files, info, strict=True)
    ]
    groups: dict[str, list[str]] = {}
    units: list[list[str]] = []
    for f, k in zip(files, keys, strict=True):
        if k is None:
            units.append([f])
        elif k in groups:
            groups[k].append(f)
        else:
            groups[k] = [f]
            units.append(groups[k])
    return [tuple(u) for u in units]


def combine_arms(spectra: Sequence[Spectrum], files: Sequence[str]) -> tuple[Spectrum, list[int]]:
    """One spectrum of an object from its per-arm spectra (``files[i]`` holds ``spectra[i]``):
    wave, flux, errors and mask concatenated in wavelength order, with two masked NaN pixels
    in each gap between arms (a pixel beyond either end), so that an arm missing between two
    others is flagged, not interpolated over. Returns it and the order of the inputs in it.
    Two spectra of the same arm (``meta['arm']``), or overlapping wavelengths, raise ReadError
    naming both files. A single spectrum is returned as it is."""
    if not spectra:
        raise ValueError("combine_arms: no spectra")
    order = sorted(range(len(spectra)), key=lambda i: float(spectra[i].wave[0]))
    if len(order) == 1:
        return spectra[0], order
    seen: dict[str, int] = {}
    for i in order:
        arm = str(spectra[i].meta.get("arm", ""))
        if arm in seen:
            raise ReadError(
                f"{files[seen[arm]]} and {files[i]} both hold the {arm} arm of object "
                f"{spectra[i].id!r}; no row for the object"
            )
        seen[arm] = i
    for a, b in itertools.pairwise(order):
        if spectra[a].wave[-1] >= spectra[b].wave[0]:
            raise ReadError(
                f"{files[a]} and {files[b]} overlap in wavelength "
                f"({spectra[b].wave[0]:.2f}-{spectra[a].wave[-1]:.2f} Å) for object "
                f"{spectra[a].id!r}; no row for the object"
            )
    s = [spectra[i] for i in order]
    if len({x.normalised for x in s}) > 1:
        raise ReadError(f"object {s[0].id!r}: some arms are normalised, others not")
    if any(x.err is not None or x.ivar is not None for x in s) and not all(
        x.err is not None or x.ivar is not None for x in s
    ):
        raise ReadError(f"object {s[0].id!r}: some arms have errors, others not")
    use_err = all(x.err is not None for x in s)
    use_ivar = not use_err and any(x.ivar is not None for x in s)  # then every arm has errors
    waves: list[np.ndarray] = []
    fluxes: list[np.ndarray] = []
    errs: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    for k, x in enumerate(s):
        if k:  # a bad pixel just past each end of the gap (docs/io.md)
            waves.append(_pads(s[k - 1].wave, x.wave))
            n = waves[-1].size
            fluxes.append(np.full(n, np.nan, x.flux.dtype))
            errs.append(np.full(n, 0.0 if use_ivar else np.nan, np.float32))
            masks.append(np.ones(n, bool))
        waves.append(x.wave)
        fluxes.append(x.flux)
        if use_err and x.err is not None:  # (use_err: every arm has err)
            errs.append(x.err)
        elif use_ivar and x.ivar is not None:
            errs.append(x.ivar)
        elif use_ivar and x.err is not None:  # (use_ivar: every arm has err or ivar)
            errs.append(_ivar(x.err))
        masks.append(x.mask != 0 if x.mask is not None else np.zeros(x.wave.size, bool))
    err = np.concatenate(errs) if use_err else None
    ivar = np.concatenate(errs) if use_ivar else None
    mask = np.concatenate(masks)
    res = [x.resolution for x in s if x.resolution is not None]
    meta = {
        **s[0].meta,
        "arm": "joined",
        "arms": tuple(str(x.meta.get("arm", "")) for x in s),
        "files": tuple(files[i] for i in order),
        "index": 0,
    }
    combined = Spectrum(
        wave=np.concatenate(waves),
        flux=np.concatenate(fluxes),
        err=err,
        ivar=ivar,
        mask=mask,
        id=s[0].id,
        resolution=min(res) if res else None,
        normalised=s[0].normalised,
        meta=meta,
    )
    return combined, order


def _pads(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wavelengths of bad pixels between arm ``a`` and the next arm ``b``: one a pixel past the
    end of ``a``, one a pixel before the start of ``b``, where they fit. Without them the
    rebinning would take the last pixel of ``a`` and the first of ``b`` as spanning the gap,
    and an arm missing in between would be filled with their flux instead of flagged."""
    pads = [a[-1] + (a[-1] - a[-2]), b[0] - (b[1] - b[0])]
    return np.array(pads if pads[0] < pads[1] else [], np.float64)  # no gap: no pads


def _ivar(err: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        iv = 1.0 / np.asarray(err, np.float64) ** 2
    return np.where(np.isfinite(iv) & (err > 0), iv, 0.0).astype(np.float32)


__all__ = ["ARM_NAMES", "OBJECT_KEYS", "combine_arms", "group_arm_files", "object_key"]
