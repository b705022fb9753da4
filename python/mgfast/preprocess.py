"""Bring spectra on any wavelength grid onto the 4MOST grid: the Python face of the core.

Validation happens here (each problem a ``ValueError`` naming the argument); the work happens in
C++ (threads) or CUDA, with the GIL released. See docs/preprocessing.md for the method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from . import _core, grid
from .flags import ARM_MISSING, SpectrumFlag
from .options import parse_device
from .quality import check_z_em

# preprocess()'s defaults: the share of an output pixel, and of an arm, that must be good
MIN_PIXEL_GOOD = 0.5
MIN_ARM_GOOD = 0.5
# Unnormalised spectra whose typical error (|flux| without errors) lies outside
# 2^±UNIT_EXPONENT_LIMIT are brought to about 1 by a power of two before anything is cast to
# float32 (_unit_exponents).
UNIT_EXPONENT_LIMIT = 10
_LEVEL_SAMPLES = 256  # pixels per spectrum whose median gives its level
# What wavelengths that miss every arm may be in: (unit, factor to Å, what to do); None: log10 Å.
_WAVE_UNITS: tuple[tuple[str, float | None, str], ...] = (
    ("nm", 10.0, "multiply by 10"),
    ("µm", 1e4, "multiply by 1e4"),
    ("m", 1e10, "multiply by 1e10"),
    ("log10(λ/Å)", None, "pass 10**wave"),
)


@dataclass(frozen=True)
class ContinuumOptions:
    """Continuum fit (penalised cubic B-spline with asymmetric sigma clipping), per arm."""

    knot_spacing: float = 40.0  # pixels between knots (15 km/s each: 600 km/s)
    penalty: float = 1.0  # second-difference penalty, relative to the data per knot
    clip_low: float = 2.5  # reject pixels this many sigma below the fit (absorption)
    clip_high: float = 3.0  # and this many above
    grow: int = 4  # grow rejected absorption by this many pixels either side
    max_iter: int = 15
    sigma_floor: float = 0.01  # clipping scale never below this fraction of the continuum
    # A pixel this many sigma above both the median of its 6 neighbours and the 90th percentile of
    # the flux within 40 pixels is a spike (cosmic ray): left out of the first fit, and masked
    # (PixelFlag.SPIKE) where the final fit clips it too. 0: off.
    spike_sigma: float = 10.0
    # Where z_em is given: the curvature penalty in the Lyα forest, relative to the one elsewhere
    # (the forest is fitted by mean-flux regulation, docs/preprocessing.md).
    forest_penalty: float = 30.0


def continuum_args(
    c: ContinuumOptions | None,
) -> tuple[float, float, float, float, int, int, float, float]:
    """The continuum options (default when None) one by one, as the GPU engine's detect_device
    takes them (the core's preprocess takes them whole: core_options)."""
    c = c or ContinuumOptions()
    return (float(c.knot_spacing), float(c.penalty), float(c.clip_low), float(c.clip_high),
            int(c.grow), int(c.max_iter), float(c.sigma_floor), float(c.spike_sigma))  # fmt: skip


def core_options(
    *,
    normalised: bool = True,
    continuum: ContinuumOptions | None = None,
    min_pixel_good: float = MIN_PIXEL_GOOD,
    min_arm_good: float = MIN_ARM_GOOD,
) -> _core.PreprocessOptions:
    """preprocess()'s keyword arguments as the core's PreprocessOptions (checked there: a
    ValueError naming the first field out of range)."""
    knots, penalty, clip_low, clip_high, grow, max_iter, floor, spike = continuum_args(continuum)
    return _core.PreprocessOptions(
        normalise=not normalised,
        min_pixel_good=float(min_pixel_good),
        min_arm_good=float(min_arm_good),
        continuum=_core.ContinuumOptions(
            knot_spacing=knots, penalty=penalty, clip_low=clip_low, clip_high=clip_high,
            grow=grow, max_iter=max_iter, sigma_floor=floor, spike_sigma=spike,
            forest_penalty=float((continuum or ContinuumOptions()).forest_penalty),
        ),
    )  # fmt: skip


@dataclass(frozen=True)
class Preprocessed:
    """Spectra on the grid. Arrays are (N, N_PIX), or (N_PIX,) when one spectrum went in."""

    flux: np.ndarray  # float32, continuum-normalised, 1 where masked
    ivar: np.ndarray  # float32 inverse variance of flux, 0 where masked or errors unknown
    pixmask: np.ndarray  # uint8 PixelFlag bits, 0 where the pixel is good
    flags: np.ndarray  # uint32 SpectrumFlag bits per spectrum
    n_masked: np.ndarray  # int32 masked pixels per arm, (N, 3)
    continuum: np.ndarray | None = field(default=None)  # fitted continuum (input units), if asked

    @property
    def err(self) -> np.ndarray:
        """1-sigma error of flux; inf where the pixel carries no weight."""
        with np.errstate(divide="ignore"):
            return np.where(self.ivar > 0, 1.0 / np.sqrt(self.ivar), np.inf).astype(np.float32)

    @property
    def arm_missing(self) -> np.ndarray:
        """Boolean (N, 3) (or (3,)): which arms were dropped."""
        f = np.asarray(self.flags)
        return np.stack([(f & int(b)) != 0 for b in ARM_MISSING], axis=-1)


def real_array(x: npt.ArrayLike, name: str, dtype: npt.DTypeLike | None) -> np.ndarray:
    """x as a C-contiguous array of dtype (None: float32 and float64 kept, other reals as
    float64), or a ValueError naming it."""
    a = np.asarray(x)
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise ValueError(f"{name}: expected real numbers, got an array of dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name}: empty array (shape {a.shape})")
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    out: np.ndarray = np.ascontiguousarray(a, dtype=dtype)
    return out


def _arms_hit(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether [lo, hi] (Å) overlaps at least one arm of the grid, elementwise."""
    hit: np.ndarray = np.any([(lo <= a.hi) & (hi >= a.lo) for a in grid.ARMS], axis=0)
    return hit


def wave_problem(lo: float, hi: float) -> str | None:
    """Why wavelengths from lo to hi cannot be searched (they miss every arm of the grid, with
    the unit they look like), or None when they overlap at least one arm."""
    if _arms_hit(np.asarray(lo), np.asarray(hi)):
        return None
    for unit, factor, fix in _WAVE_UNITS:
        if factor is None:  # log10(λ/Å): the arms lie between 3.59 and 3.84
            ok = 0.0 < lo and hi < 10.0 and _arms_hit(np.asarray(10.0**lo), np.asarray(10.0**hi))
        else:
            ok = _arms_hit(np.asarray(lo * factor), np.asarray(hi * factor))
        if ok:
            return f"{lo:.6g}-{hi:.6g} looks like {unit}; mgfast wants vacuum Å ({fix})"
    arms = ", ".join(f"{a.name} {a.lo:.0f}-{a.hi:.0f}" for a in grid.ARMS)
    return (
        f"{lo:.6g}-{hi:.6g} Å misses every arm of the grid ({arms} Å); mgfast needs vacuum Å "
        "covering at least one arm"
    )


def _check_coverage(w: np.ndarray) -> None:
    """ValueError when the wavelengths of some spectrum miss every arm (wrong unit, or another
    part of the spectrum): such a spectrum could only come back empty."""
    lo, hi = np.atleast_1d(w[..., 0]), np.atleast_1d(w[..., -1])
    bad = np.flatnonzero(~_arms_hit(lo, hi))
    if bad.size:
        where = "wave" if w.ndim == 1 else f"wave (spectrum {_list(bad)})"
        raise ValueError(f"{where}: {wave_problem(float(lo[bad[0]]), float(hi[bad[0]]))}")


def _row_median(a: np.ndarray) -> np.ndarray:
    """Median of each row's non-NaN values (NaN for a row without one)."""
    a = np.sort(a, axis=1)  # NaN last
    n = np.sum(~np.isnan(a), axis=1)
    mid = a[np.arange(len(a)), np.maximum(n - 1, 0) // 2]
    return np.where(n > 0, mid, np.nan)


def _levels(f: np.ndarray, e: np.ndarray | None, is_ivar: bool, m: np.ndarray | None,
            bad_bits: int) -> np.ndarray:  # fmt: skip
    """Typical size of each row's values over its good pixels (finite flux with a finite positive
    error, not masked): the median error, or the median |flux| without errors (or where the
    errors give none); NaN where there is no good pixel. In the arrays' own precision."""
    with np.errstate(all="ignore"):
        fa = np.abs(f)
        ok = np.isfinite(fa)
        es = None
        if e is not None:
            es = 1.0 / np.sqrt(e) if is_ivar else e
            ok &= np.isfinite(es) & (es > 0)
        if m is not None:
            ok &= (m & bad_bits) == 0
        level = np.full(len(f), np.nan)
        if es is not None:
            level[:] = _row_median(np.where(ok, es, np.nan))
        rows = np.flatnonzero(~(level > 0))
        if rows.size:
            level[rows] = _row_median(np.where(ok[rows], fa[rows], np.nan))
    return level


def _times_power_of_two(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x[i] * 2^k[i], exact (bar underflow and overflow): a product with a power of two in x's
    own precision where that holds it (much faster than np.ldexp), else np.ldexp."""
    lim = 126 if x.dtype == np.float32 else 1022
    out: np.ndarray
    with np.errstate(over="ignore", under="ignore"):
        if np.all(np.abs(k) <= lim):
            out = x * np.ldexp(np.ones(len(k), x.dtype), k)[:, None]
        else:
            out = np.ldexp(x, k[:, None])
    return out


def _unit_exponents(f: np.ndarray, e: np.ndarray | None, is_ivar: bool, m: np.ndarray | None,
                    bad_bits: int) -> np.ndarray:  # fmt: skip
    """Per spectrum, the power of two k that brings its typical error (the median over good
    pixels; its typical |flux| without errors) to about 1, or 0 where that lies within
    2^±UNIT_EXPONENT_LIMIT already. Dividing flux and errors by 2^k is exact and commutes with every
    step of the pipeline (each is homogeneous in the flux), so it changes no bit of the normalised
    output; it only keeps the float32 steps (the input cast, 1/σ² of the rebinned pixels) inside
    float32's range, which units like W m⁻² nm⁻¹ (σ ~ 1e-20, 1/σ² ~ 1e40) leave. The level is
    the median of a sample of _LEVEL_SAMPLES pixels (any level within a few powers of two will
    do). A pixel more than 2^127 times the typical error (beyond float32 either way) comes out
    inf and is masked as bad input, as it always was."""
    n = f.shape[1]
    cols = None  # all of them
    if n > _LEVEL_SAMPLES:  # blocks of 32 pixels spread over the spectrum (a strided sample of
        # a large array would cost a cache miss per pixel)
        starts = np.linspace(0, n - 32, _LEVEL_SAMPLES // 32).astype(np.int64)
        cols = (starts[:, None] + np.arange(32)).ravel()

    def sample(x: np.ndarray) -> np.ndarray:
        return x if cols is None else np.take(x, cols, axis=1)

    level = _levels(sample(f), None if e is None else sample(e), is_ivar,
                    None if m is None else sample(m), bad_bits)  # fmt: skip
    redo = np.flatnonzero(~(level > 0)) if cols is not None else np.empty(0, np.int64)
    if redo.size:  # nothing usable among the sampled pixels: all of them
        level[redo] = _levels(f[redo], None if e is None else e[redo], is_ivar,
                              None if m is None else m[redo], bad_bits)  # fmt: skip
    with np.errstate(all="ignore"):
        k = np.where((level > 0) & np.isfinite(level), np.round(np.log2(level)), 0.0)
    k = k.astype(np.int64)
    return np.where(np.abs(k) > UNIT_EXPONENT_LIMIT, k, 0)


@overload
def _per_spectrum(x: None, n: int, name: str) -> None: ...
@overload
def _per_spectrum(x: npt.ArrayLike, n: int, name: str) -> np.ndarray: ...
def _per_spectrum(x: npt.ArrayLike | None, n: int, name: str) -> np.ndarray | None:
    if x is None:
        return None
    if np.ndim(x) == 0:
        x = np.full(n, x)
    a = real_array(x, name, np.float64)
    if a.shape != (n,):
        raise ValueError(
            f"{name}: expected a scalar or one value per spectrum ({n}), got {a.shape}"
        )
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"{name}: resolving power must be finite and positive")
    return a


def _is_grid(wave: np.ndarray) -> bool:
    g = grid.wavelength()
    return wave.shape[-1] == g.size and bool(np.all(np.abs(wave - g) <= 1e-9 * g))


def preprocess(
    flux: npt.ArrayLike,
    wave: npt.ArrayLike | None = None,
    err: npt.ArrayLike | None = None,
    *,
    ivar: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
    bad_bits: int = 0xFFFFFFFF,
    resolution: float | npt.ArrayLike | None = None,
    normalised: bool = True,
    z_em: float | npt.ArrayLike | None = None,
    missing_arm: Literal["flag", "raise"] = "flag",
    allow_empty: bool = False,
    continuum: ContinuumOptions | None = None,
    min_pixel_good: float = MIN_PIXEL_GOOD,
    min_arm_good: float = MIN_ARM_GOOD,
    return_continuum: bool = False,
    device: str = "cpu",
    threads: int = 0,
) -> Preprocessed:
    """Resample, mask and (optionally) continuum-normalise spectra onto the 4MOST grid.

    Parameters
    ----------
    flux : (N, n) or (n,) array
        Flux densities. Without ``wave`` they must already be on the grid (n = N_PIX): the fast
        path, which only masks and fills.
    wave : (n,) or (N, n) array, optional
        Vacuum wavelengths in Å of the pixel centres, strictly increasing, overlapping at least
        one arm of the grid (a ValueError otherwise, saying what unit they look like: nm, µm, m
        or log10 Å). Covering one or two arms is fine: the others are flagged ARM_MISSING_*.
    err, ivar : arrays like flux, optional
        1-sigma errors or inverse variances (not both). Pixels with err <= 0, ivar <= 0 or
        non-finite values are masked.
    mask : integer array like flux, optional
        Quality bits; a pixel is masked when ``mask & bad_bits`` is non-zero.
    resolution : float or (N,) array, optional
        Resolving power of the input. Finer than R = 20000 is degraded with a Gaussian LSF;
        coarser is only rebinned and flagged LOW_RESOLUTION. Default: 20000.
    normalised : bool
        Whether flux is already continuum-normalised. If False, a continuum is fitted per arm,
        and the flux may be in any unit (W m⁻² nm⁻¹, erg s⁻¹ cm⁻² Å⁻¹, counts; float64 down to
        1e-300): each spectrum is scaled by a power of two before anything is rounded to
        float32, so the normalised output does not depend on the unit.
    z_em : float or (N,) array, optional
        The quasars' emission redshifts (NaN: unknown). With ``normalised=False`` the continuum
        fit treats their Lyman-α forest (rest 1040-1200 Å) by mean-flux regulation: the forest's
        pixels divided by the mean transmission at their redshift, none clipped, under a stiffer
        spline (docs/preprocessing.md). Nothing is masked here (Detector.detect masks what lies
        beyond z_em).
    missing_arm : "flag" or "raise"
        An arm with under ``min_arm_good`` of its pixels usable is masked and flagged
        (ARM_MISSING_*), or raises ``ValueError``.
    allow_empty : bool
        Keep spectra with no usable pixel at all (flagged ALL_MASKED) instead of raising.
    min_pixel_good : float
        An output pixel needs this fraction of its width covered by good input, or it is masked.
    return_continuum : bool
        Also return the fitted continuum, in the input's units (float64 when flux is float64).
    device : "cpu" or "cuda[:N]"
    threads : int
        CPU threads (0: all).
    """
    single = np.ndim(flux) == 1
    f = real_array(flux, "flux", None)  # float32 or float64: cast after any unit scaling
    if single:
        f = f[None, :]
    if f.ndim != 2:
        raise ValueError(f"flux: expected shape (N, n_pix) or (n_pix,), got {f.shape}")
    n_spec, n_in = f.shape
    no_finite = ~np.isfinite(f).any(axis=1)
    if no_finite.any() and not allow_empty:
        idx = np.flatnonzero(no_finite)
        raise ValueError(
            f"flux: spectrum {_list(idx)} has no finite value (NaN/inf everywhere); "
            "drop it or pass allow_empty=True to keep it flagged ALL_MASKED"
        )

    w = None
    if wave is not None:
        w = real_array(wave, "wave", np.float64)
        if single and w.ndim == 1 and w.shape[0] != n_in:
            raise ValueError(f"wave: {w.shape[0]} values for {n_in} flux pixels")
        if w.shape not in ((n_in,), (n_spec, n_in)):
            raise ValueError(f"wave: shape {w.shape} matches neither ({n_in},) nor {f.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("wave: contains NaN or inf")
        if not np.all(np.diff(w, axis=-1) > 0):
            raise ValueError("wave: wavelengths must increase strictly along each spectrum")
        _check_coverage(w)
    elif n_in != grid.N_PIX:
        raise ValueError(
            f"flux: {n_in} pixels but no wave given; spectra off the grid need wave "
            f"(the grid has {grid.N_PIX} pixels)"
        )

    if err is not None and ivar is not None:
        raise ValueError("err, ivar: give one or the other, not both")
    e, is_ivar = None, False
    for name, arr in (("err", err), ("ivar", ivar)):
        if arr is not None:
            e = real_array(arr, name, None)
            if single:
                e = e[None, :] if e.ndim == 1 else e
            if e.shape != f.shape:
                raise ValueError(f"{name}: shape {e.shape} differs from flux's {f.shape}")
            is_ivar = name == "ivar"
    m = None
    if mask is not None:
        m0 = np.asarray(mask)
        if not (np.issubdtype(m0.dtype, np.integer) or m0.dtype == bool):
            raise ValueError(f"mask: expected integer bits or booleans, got dtype {m0.dtype}")
        m = np.ascontiguousarray(m0.astype(np.uint32))
        if single:
            m = m[None, :] if m.ndim == 1 else m
        if m.shape != f.shape:
            raise ValueError(f"mask: shape {m.shape} differs from flux's {f.shape}")
    r = _per_spectrum(resolution, n_spec, "resolution")
    zem = check_z_em(z_em, n_spec)
    if missing_arm not in ("flag", "raise"):
        raise ValueError(f"missing_arm: expected 'flag' or 'raise', got {missing_arm!r}")
    for name, v in (("min_pixel_good", min_pixel_good), ("min_arm_good", min_arm_good)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name}: must lie in (0, 1], got {v}")
    options = core_options(
        normalised=normalised, continuum=continuum, min_pixel_good=min_pixel_good,
        min_arm_good=min_arm_good,
    )  # fmt: skip
    dev = parse_device(device)

    # Unit-free numerics: an unnormalised spectrum whose errors (or flux) are far from 1 is scaled
    # by a power of two, in its own precision, before the cast to float32 (_unit_exponents); its
    # continuum is scaled back. Normalised flux is unit-free already.
    k = None if normalised else _unit_exponents(f, e, is_ivar, m, int(bad_bits) & 0xFFFFFFFF)
    if k is not None and np.any(k):  # (what overflows is masked as bad input)
        f = _times_power_of_two(f, -k)
        if e is not None:
            e = _times_power_of_two(e, 2 * k if is_ivar else -k)
    cont_dtype = f.dtype
    f = np.ascontiguousarray(f, np.float32)
    e = None if e is None else np.ascontiguousarray(e, np.float32)

    # Already on the grid and not finer than it: skip resampling (the fast path).
    if w is not None and _is_grid(w) and (r is None or np.all(r <= grid.RESOLVING_POWER)):
        w = None
    out = _core.preprocess(
        f, w, e, m, r, zem, is_ivar, int(bad_bits) & 0xFFFFFFFF, options, bool(return_continuum),
        str(dev), int(threads),
    )  # fmt: skip

    if "continuum" in out:  # in the input's units, and precision
        c = out["continuum"].astype(cont_dtype, copy=False)
        out["continuum"] = c if k is None or not np.any(k) else np.ldexp(c, k[:, None])
    flags = out["flags"]
    if not allow_empty:
        empty = np.flatnonzero(flags & int(SpectrumFlag.ALL_MASKED))
        if empty.size:
            raise ValueError(
                f"flux: spectrum {_list(empty)} has no usable pixel on the grid (all NaN, "
                "masked, with error <= 0, or outside the arms); pass allow_empty=True to keep it"
            )
    if missing_arm == "raise":
        for a, bit in enumerate(ARM_MISSING):
            hit = np.flatnonzero(flags & int(bit))
            if hit.size:
                raise ValueError(
                    f"flux: spectrum {_list(hit)} misses the {grid.ARMS[a].name} arm "
                    f"({grid.ARMS[a].lo:.0f}-{grid.ARMS[a].hi:.0f} Å: under "
                    f"{min_arm_good:.0%} of it usable); pass missing_arm='flag' to keep it masked"
                )
    if single:
        out = {k: v[0] for k, v in out.items()}
    return Preprocessed(**out)


def lsf_degrade(
    wave: npt.ArrayLike,
    flux: npt.ArrayLike,
    resolution: float | npt.ArrayLike,
    err: npt.ArrayLike | None = None,
    r_out: float = grid.RESOLVING_POWER,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Degrade spectra from ``resolution`` to ``r_out`` on their own pixels (Gaussian LSF).

    The same step ``preprocess`` applies before rebinning, exposed for checking. Returns flux
    (NaN where bad), err (0 where bad) and a good-pixel mask.
    """
    single = np.ndim(flux) == 1
    f = real_array(flux, "flux", np.float32)
    f = f[None, :] if single else f
    w = real_array(wave, "wave", np.float64)
    e = None if err is None else real_array(err, "err", np.float32)
    if e is not None and single:
        e = e[None, :]
    r = _per_spectrum(resolution, f.shape[0], "resolution")
    fo, eo, go = _core.lsf_degrade(w, f, e, r, float(r_out), int(threads))
    go = go.astype(bool)
    return (fo[0], eo[0], go[0]) if single else (fo, eo, go)


def _list(idx: np.ndarray, limit: int = 10) -> str:
    s = ", ".join(str(i) for i in idx[:limit])
    return s + (f" … ({idx.size} in all)" if idx.size > limit else "")


__all__ = ["ContinuumOptions", "Preprocessed", "lsf_degrade", "preprocess", "wave_problem"]
