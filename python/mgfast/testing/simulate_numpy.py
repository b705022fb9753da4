"""Plain NumPy/SciPy implementation of mgfast's simulator physics for the paper's setup, the
baseline that bench/simulate_throughput.py times mgfast.simulate against.

Same physics as src/core/simulate/simulate.hpp with every realism switch off: continuum-normalised
flux, at most one MgII absorber per spectrum, the same kinematics, Voigt approximation, EW solve,
LSF rendering, SNR edge profile and Gaussian noise. Its random numbers are NumPy's, not Philox.
``render_absorbers`` renders given absorbers (e.g. the C++ truth) so that the two can be compared
pixel by pixel (tests/test_simulate_reference.py).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import erf  # type: ignore[import-untyped]

# Grid (src/core/grid/grid.hpp): arms uniform in ln λ from their blue edges, gaps stripped.
C_KMS = 299792.458
DLNL = 1.0 / 20000.0
ARM_LO = np.array([3926.0, 5160.0, 6100.0])
ARM_NPIX = np.array([2075, 2096, 2144])
ARM_START = np.array([0, 2075, 2075 + 2096])
N_PIX = int(ARM_NPIX.sum())

# MgII doublet (Morton 2003): rest λ (Å), f, Γ (s^-1).
MGII = ((2796.3543, 0.6155, 2.625e8), (2803.5315, 0.3058, 2.595e8))

K_FINE = 20  # profile samples per pixel
PIX_KMS = C_KMS * DLNL
MAX_HALF_KMS = 330.0
MAX_COMP = 8
LSF_SIGMA = 1.0 / 2.3548200450309493  # pixels: FWHM of one pixel
KERNEL_REACH = 0.5 + 5.4 * LSF_SIGMA  # pixels, with the LSF truncated at 5.4 σ
SQRT_PI = 1.7724538509055159

# render_pixel sums samples j = floor((k - reach + 1/2) K) … ceil((k + reach + 1/2) K) for pixel k,
# the same offsets m = j - K k for every k, so its box-averaged LSF weights are one fixed kernel.
_M_LO = int(np.floor((0.5 - KERNEL_REACH) * K_FINE))
_M_HI = int(np.ceil((0.5 + KERNEL_REACH) * K_FINE))
_M = np.arange(_M_LO, _M_HI + 1)
_XM = (_M + 0.5) / K_FINE - 0.5  # sample offset from the pixel centre
_INV = 1.0 / (LSF_SIGMA * np.sqrt(2.0))
LSF_WEIGHTS = 0.5 * (erf((0.5 - _XM) * _INV) - erf((-0.5 - _XM) * _INV))

# Each line's absorption stays within MAX_HALF_KMS of its system's zero: a fixed window of pixels
# (and of samples) around it holds every sample with τ > 0 and every pixel it reaches through the
# LSF, so all absorbers share one array shape.
_HALF_MAX_PIX = MAX_HALF_KMS / PIX_KMS + 0.01
WIN_PIX = int(np.ceil(2.0 * (_HALF_MAX_PIX + KERNEL_REACH))) + 3
WIN_SAMPLES = K_FINE * (WIN_PIX - 1) + _M.size


def hjerting(a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Voigt-Hjerting H(a, u) after Tepper-García (2006), with the series limit near u = 0."""
    u2 = u * u
    h0 = np.exp(-u2)
    u2s = np.maximum(u2, 1e-4)  # the branch not taken must not divide by zero
    m = np.where(u2s < 0.5, np.expm1(-2.0 * u2s), h0 * h0 - 1.0).astype(u2s.dtype)  # h0² - 1
    bracket = h0 * h0 * (4.0 * u2s * u2s + 7.0 * u2s + 4.0) - 1.0 + 1.5 / u2s * m
    far = h0 - a / SQRT_PI / u2s * bracket
    return cast(np.ndarray, np.where(u2 < 1e-4, h0 * (1.0 - 2.0 * a / SQRT_PI), far))


def support_kms(tau0: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half-width (km/s) beyond which a component's τ < 1e-4: Gaussian core or Lorentzian wings."""
    u = np.sqrt(np.log(np.where(tau0 > 1.0001e-4, tau0 / 1e-4, 1.0001)))
    u = np.maximum(u, np.sqrt(tau0 * a / (SQRT_PI * 1e-4)))
    return cast(np.ndarray, np.minimum((u + 1.0) * b, MAX_HALF_KMS))


def snr_profile(edge_ratio: float = 2.5, taper: int = 420) -> np.ndarray:
    """SNR relative to the arm centre for each grid pixel: cosine taper towards the arm ends."""
    k = np.concatenate([np.arange(n) for n in ARM_NPIX])
    d = np.minimum(k, np.repeat(ARM_NPIX, ARM_NPIX) - 1 - k)
    lo = 1.0 / edge_ratio
    prof = lo + (1.0 - lo) * 0.5 * (1.0 - np.cos(np.pi * d / max(taper, 1)))
    return np.where(d >= taper, 1.0, prof)


def arm_of(lam: np.ndarray) -> np.ndarray:
    k = np.log(lam[:, None] / ARM_LO) / DLNL
    inside = (k >= -0.5) & (k <= ARM_NPIX - 0.5)
    if not np.all(inside.any(axis=1)):
        raise ValueError("an absorber lies outside the arms")
    return cast(np.ndarray, inside.argmax(axis=1))


class TransitionWindow:
    """One MgII transition of n absorbers on its fixed window of fine samples: everything about
    the profiles that does not depend on the column density (the Voigt shape H, the distances),
    so the EW solve only rescales τ0."""

    def __init__(
        self,
        t: int,
        z: np.ndarray,
        arm: np.ndarray,
        logn: np.ndarray,
        b: np.ndarray,
        v: np.ndarray,
    ) -> None:
        self.lam0, self.f, gamma = MGII[t]
        self.valid = np.isfinite(logn)
        self.b = np.where(self.valid, b, 10.0).astype(np.float64)
        self.v = np.where(self.valid, v, 0.0).astype(np.float64)
        n = z.size
        lam_obs = self.lam0 * (1.0 + z)
        x_sys = np.log(lam_obs / ARM_LO[arm]) / DLNL
        self.k_lo = np.floor(x_sys - _HALF_MAX_PIX - KERNEL_REACH).astype(np.int64) - 1
        if np.any(self.k_lo < 0) or np.any(self.k_lo + WIN_PIX > ARM_NPIX[arm]):
            raise ValueError("an absorber's window crosses an arm edge")
        self.cols = ARM_START[arm][:, None] + self.k_lo[:, None] + np.arange(WIN_PIX)
        j = K_FINE * self.k_lo[:, None] + _M_LO + np.arange(WIN_SAMPLES)
        x = (j + 0.5) / K_FINE - 0.5
        self.lam_weight = (
            ARM_LO[arm][:, None] * np.exp(x * DLNL) * DLNL / K_FINE / (1.0 + z[:, None])
        )
        # The C++ line list stores centre, τ0, a, b and half-width as float32: so do we, for
        # pixel-level agreement (a centre off by 1e-4 pixel shows in steep line wings).
        xc = np.log(lam_obs[:, None] * np.exp(self.v / C_KMS) / ARM_LO[arm][:, None]) / DLNL
        xc = xc.astype(np.float32).astype(np.float64)
        self.a_exact = gamma * self.lam0 * 1e-13 / (4.0 * np.pi * self.b)
        a32 = self.a_exact.astype(np.float32).astype(np.float64)
        b_pix = (self.b / PIX_KMS).astype(np.float32).astype(np.float64)
        d = x[:, None, :] - xc[:, :, None]
        self.abs_d = np.abs(d)
        self.h = hjerting(a32[:, :, None], d / b_pix[:, :, None])
        self.reach_kms = MAX_HALF_KMS - np.abs(self.v)
        assert self.h.shape == (n, logn.shape[1], WIN_SAMPLES)

    def tau(
        self, logn: np.ndarray, dlogn: np.ndarray | float, sel: slice | np.ndarray = slice(None)
    ) -> np.ndarray:
        """Optical depth on the window's samples with column densities scaled by 10^dlogn."""
        valid, b = self.valid[sel], self.b[sel]
        ln = np.where(valid, logn[sel], 0.0) + np.reshape(dlogn, (-1, 1))
        tau0 = 1.4974e-15 * 10.0**ln * self.f * self.lam0 / b
        # MgII components extend to the 330 km/s cap (simulate.hpp), whatever their τ there.
        half = self.reach_kms[sel] / PIX_KMS
        half = np.where(valid, half.astype(np.float32), -1.0)
        tau0 = np.where(valid, tau0.astype(np.float32), 0.0)
        inside = self.abs_d[sel] <= half[:, :, None]
        return cast(np.ndarray, np.einsum("ncj,nc->nj", self.h[sel] * inside, tau0))

    def rest_ew(
        self,
        logn: np.ndarray,
        dlogn: np.ndarray | float = 0.0,
        sel: slice | np.ndarray = slice(None),
    ) -> np.ndarray:
        absorbed = 1.0 - np.exp(-self.tau(logn, dlogn, sel))
        return cast(np.ndarray, np.sum(absorbed * self.lam_weight[sel], axis=1))

    def absorbed_pixels(self, logn: np.ndarray) -> np.ndarray:
        """Σ_samples (1 - e^-τ) × LSF weight for each window pixel (the sum render_pixel makes)."""
        absorbed = 1.0 - np.exp(-self.tau(logn, 0.0))
        windows = sliding_window_view(absorbed, _M.size, axis=1)[:, ::K_FINE]
        return cast(np.ndarray, windows @ LSF_WEIGHTS)


def solve_dlogn(
    tr: TransitionWindow, logn: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """log N shift bringing each absorber's rest EW to target: bracketing, then Illinois regula
    falsi, vectorised over absorbers with the C++ solver's steps and tolerances. Returns (dlogn,
    ok); ok is False where the kinematics cannot reach the target."""
    n = target.size
    lo, hi = np.full(n, -4.0), np.zeros(n)
    flo = tr.rest_ew(logn, lo) - target
    fhi = tr.rest_ew(logn, hi) - target
    for _ in range(30):
        s = np.flatnonzero(fhi < 0.0)
        if s.size == 0:
            break
        lo[s], flo[s] = hi[s], fhi[s]
        hi[s] += 1.0
        fhi[s] = tr.rest_ew(logn, hi[s], s) - target[s]
    for _ in range(30):
        s = np.flatnonzero(flo > 0.0)
        if s.size == 0:
            break
        hi[s], fhi[s] = lo[s], flo[s]
        lo[s] -= 2.0
        flo[s] = tr.rest_ew(logn, lo[s], s) - target[s]
    ok = (fhi >= 0.0) & (flo <= 0.0)
    x = hi.copy()
    side = np.zeros(n, dtype=np.int8)
    active = np.flatnonzero(ok)
    for _ in range(60):
        if active.size == 0:
            break
        s = active
        xs = (lo[s] * fhi[s] - hi[s] * flo[s]) / (fhi[s] - flo[s])
        fx = tr.rest_ew(logn, xs, s) - target[s]
        x[s] = xs
        done = (np.abs(fx) < 1e-6 * target[s]) | (hi[s] - lo[s] < 1e-9)
        up = ~done & (fx > 0.0)
        down = ~done & ~(fx > 0.0)
        u, d = s[up], s[down]
        hi[u], fhi[u] = xs[up], fx[up]
        flo[u[side[u] == 1]] *= 0.5
        side[u] = 1
        lo[d], flo[d] = xs[down], fx[down]
        fhi[d[side[d] == -1]] *= 0.5
        side[d] = -1
        active = s[~done]
    return x, ok


def draw_kinematics(
    rng: np.random.Generator, ew: np.ndarray
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Components of MgII absorbers of rest EW2796 ew: as draw_kinematics in simulate.hpp.
    Returns logn, b, v as (n, MAX_COMP) float32, NaN beyond each absorber's components."""
    n = ew.size
    n_comp = np.minimum(1 + rng.poisson(1.5 * ew), MAX_COMP)
    b = (6.0 + 4.0 * ew)[:, None] * np.exp(0.35 * rng.standard_normal((n, MAX_COMP)))
    b = np.clip(b, 3.0, 60.0)
    vmax = MAX_HALF_KMS - 5.0 * b - 40.0
    v = (15.0 + 35.0 * ew)[:, None] * rng.standard_normal((n, MAX_COMP))
    v[:, 0] = 0.0
    v = np.where(v > vmax, vmax, np.where(v < -vmax, -vmax, v))
    logn = 12.0 + 0.4 * rng.standard_normal((n, MAX_COMP))
    unused = np.arange(MAX_COMP) >= n_comp[:, None]
    out = [np.where(unused, np.nan, q).astype(np.float32) for q in (logn, b, v)]
    return out[0], out[1], out[2]


def _lambda_ranges(margin: float) -> tuple[np.ndarray, np.ndarray]:
    ratio = MGII[1][0] / MGII[0][0]
    lo = ARM_LO * np.exp(-0.5 * DLNL) + margin
    hi = (ARM_LO * np.exp((ARM_NPIX - 0.5) * DLNL) - margin) / ratio
    return lo, hi


def draw_lambda2796(rng: np.random.Generator, n: int, margin: float = 25.0) -> np.ndarray:
    """λ2796 flat over the arms, both lines at least `margin` Å inside one."""
    lo, hi = _lambda_ranges(margin)
    length = np.maximum(hi - lo, 0.0)
    u = rng.uniform(size=n) * length.sum()
    arm = np.minimum(np.searchsorted(np.cumsum(length), u), len(lo) - 1)
    return cast(
        np.ndarray, lo[arm] + np.minimum(u - (np.cumsum(length) - length)[arm], length[arm])
    )


def render_absorbers(
    z: npt.ArrayLike, comp_logn: npt.ArrayLike, comp_b: npt.ArrayLike, comp_v: npt.ArrayLike
) -> tuple[npt.NDArray[np.float32], np.ndarray, np.ndarray]:
    """Noiseless transmission (N, N_PIX) float32 and rest EW2796, EW2803 of one MgII absorber per
    spectrum, given its redshift and components (z NaN: no absorber), e.g. the C++ truth."""
    z = np.asarray(z, dtype=np.float64)
    logn = np.asarray(comp_logn, dtype=np.float32)
    b = np.asarray(comp_b, dtype=np.float32)
    v = np.asarray(comp_v, dtype=np.float32)
    clean = np.ones((z.size, N_PIX), dtype=np.float32)
    ew = np.full((z.size, 2), np.nan)
    rows = np.flatnonzero(np.isfinite(z))
    if rows.size:
        absorbed = np.zeros((rows.size, N_PIX))
        arm = arm_of(MGII[0][0] * (1.0 + z[rows]))
        for t in (0, 1):
            tr = TransitionWindow(t, z[rows], arm, logn[rows], b[rows], v[rows])
            ew[rows, t] = tr.rest_ew(logn[rows])
            np.add.at(
                absorbed, (np.arange(rows.size)[:, None], tr.cols), tr.absorbed_pixels(logn[rows])
            )
        clean[rows] = (1.0 - absorbed / K_FINE).astype(np.float32)
    return clean, ew[:, 0], ew[:, 1]


def _simulate_chunk(
    rng: np.random.Generator,
    n: int,
    snr_values: npt.ArrayLike,
    fraction: float,
    ew_range: tuple[float, float],
    profile: np.ndarray,
    noise: bool,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], dict[str, np.ndarray]]:
    snr = rng.choice(np.asarray(snr_values, dtype=np.float64), size=n)
    z_em = rng.uniform(1.0, 3.6, size=n)
    has = rng.uniform(size=n) < fraction
    m = int(has.sum())
    ew_req = rng.uniform(*ew_range, size=m)
    z = draw_lambda2796(rng, m) / MGII[0][0] - 1.0
    arm = arm_of(MGII[0][0] * (1.0 + z))
    logn = np.full((m, MAX_COMP), np.nan, dtype=np.float32)
    b, v = logn.copy(), logn.copy()
    ok = np.zeros(m, dtype=bool)
    for _ in range(8):  # new kinematics where the previous ones cannot reach the EW
        s = np.flatnonzero(~ok)
        if s.size == 0:
            break
        logn[s], b[s], v[s] = draw_kinematics(rng, ew_req[s])
        tr = TransitionWindow(0, z[s], arm[s], logn[s], b[s], v[s])
        dlogn, ok_s = solve_dlogn(tr, logn[s], ew_req[s])
        logn[s[ok_s]] += dlogn[ok_s, None].astype(np.float32)
        ok[s] = ok_s
    clean, ew1, ew2 = render_absorbers(z, logn, b, v)
    # Absorbers rendered without a solve keep their unscaled columns and an EW of 0 (as the C++).
    ew1[~ok], ew2[~ok] = 0.0, 0.0
    row_z = np.full(n, np.nan)
    row_z[has] = z
    full_clean = np.ones((n, N_PIX), dtype=np.float32)
    full_clean[has] = clean
    z_em[has] = np.where(z_em[has] < z + 0.05, z + 0.05 + 0.5 * rng.uniform(size=m), z_em[has])
    sigma = 1.0 / (snr[:, None] * profile)
    flux = full_clean + sigma * rng.standard_normal((n, N_PIX)) if noise else full_clean
    truth: dict[str, np.ndarray] = {
        "has_absorber": has,
        "snr": snr,
        "z_em": z_em,
        "z": row_z,
        "ew2796_requested": _scatter(has, ew_req),
        "ew2796": _scatter(has, ew1),
        "ew2803": _scatter(has, ew2),
        "ew_not_reached": _scatter(has, ~ok, fill=False),
        "comp_logn": _scatter(has, logn),
        "comp_b": _scatter(has, b),
        "comp_v": _scatter(has, v),
    }
    return flux.astype(np.float32), sigma.astype(np.float32), truth


def _scatter(has: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full((has.size, *values.shape[1:]), fill, dtype=values.dtype)
    out[has] = values
    return out


def simulate_numpy(
    n: int,
    seed: int,
    snr_values: npt.ArrayLike = (3.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0),
    with_absorber_fraction: float = 0.8,
    *,
    ew_range: tuple[float, float] = (0.05, 5.15),
    noise: bool = True,
    chunk: int = 256,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], dict[str, np.ndarray]]:
    """n spectra of the paper's setup: flux, err (n, N_PIX) float32 and a dict of truth arrays
    (absorber columns NaN where there is none; ``lambda2796`` uses the paper's 5358 Å label).
    Spectra are made `chunk` at a time, which bounds the memory of the per-sample arrays."""
    rng = np.random.default_rng(seed)
    profile = snr_profile()
    parts = [
        _simulate_chunk(
            rng, min(chunk, n - i), snr_values, with_absorber_fraction, ew_range, profile, noise
        )
        for i in range(0, n, chunk)
    ]
    if not parts:
        empty = np.zeros((0, N_PIX), dtype=np.float32)
        return empty, empty.copy(), {}
    flux = np.concatenate([p[0] for p in parts])
    err = np.concatenate([p[1] for p in parts])
    truth = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
    truth["lambda2796"] = np.where(truth["has_absorber"], MGII[0][0] * (1 + truth["z"]), 5358.0)
    return flux, err, truth
