"""A held-out mock family: a second MgII spectrum generator that shares no code with the project's
simulator (src/core/simulate/simulate.hpp, mgfast.simulate, mgfast_train.data), for evaluation only.

HELD OUT: nothing made here is ever used to train a network, to choose a threshold or to calibrate
anything. training/evaluate_heldout.py reports every detector on it (GitHub issue 16). Pure NumPy
and SciPy: it imports nothing from mgfast, from src/ or from training/.

    from heldout_mock import generate
    d = generate(1000, family="realistic", seed=90002, snr=10)
    d["flux"], d["err"]          # (n, 6315) float32 on the 4MOST grid, normalised
    d["wave"]                    # (6315,) pixel centres, Å (vacuum)
    d["truth"]["lambda2796"]     # and z, ew2796, ew2803, n_clouds, dv_extent, dv90, ...

The grid (DESIGN.md, defined again here): arms Blue 3926-4355, Green 5160-5730, Red 6100-6790 Å
(vacuum); λ_k = lo·exp(k/20000) per arm, k = 0, 1, ... while λ_k ≤ hi; gaps stripped: 6315 pixels.

Physics (every choice below is this module's own, parametrised differently from the simulator):

* Profiles: Voigt, τ(v) = 1.497e-15 N f λ0[Å] / b[km/s] · H(a, v/b), H(a, x) = Re wofz(x + ia),
  a = Γ λ0 / (4π b). MgII 2796.354 / 2803.531 Å, f 0.6155 / 0.3058, Γ 2.625e8 / 2.595e8 s^-1.
  Doppler cores are exact Gaussians (H(0, x)); wofz replaces them for the clouds whose damping
  wings reach τ > 3e-4 beyond five Doppler widths (all strong clouds).
* Rendering: absorption systems on a sub-grid of 32 samples per pixel (0.47 km/s; b ≥ 1 km/s is
  resolved), the Lyman-α forest on 8 samples per pixel (b ≥ 10 km/s); every arm with 8 pixels of
  margin at either end. The transmission is convolved with a Gaussian LSF whose resolving power R
  (FWHM = λ/R) is drawn per spectrum, flat in 17,000-23,000, and then averaged over each grid
  pixel's 8 samples (flux-conserving: ∫(1 − F) dλ is kept).
* Kinematics of an MgII system of target rest EW2796 W (Å): 1 + Binomial(4, min(0.85, 0.08 +
  0.22 W)) subsystems; a total velocity extent Δv log-normal about 25 + 110 W km/s (σ_ln 0.4),
  at least 80 W km/s, at most 900 km/s, over which the subsystem centres are spread (the first
  two at its ends), each subsystem with a velocity dispersion of (0.12-0.3) Δv / n_sub + 3 km/s
  (Δv / 4 for a single one), so that the clouds of strong systems spread over 400-1000 km/s
  (Churchill et al. 2003; the ultra-strong systems of Nestor et al. 2007); 1-60 clouds
  (log-normal about 1.5 + 8 W, σ_ln 0.5, at least W / 0.15 for W > 1 Å) shared among the
  subsystems by log-normal weights (σ_ln 1, one subsystem 5 times heavier: it dominates);
  Doppler b of each cloud log-normal about 7 km/s (σ_ln 0.6) truncated to 1-30 km/s;
  log N of each cloud = log of its subsystem's weight + N(0, 0.45). Then all column densities are
  scaled together (one offset in log N, found by root finding) until the rest EW2796 of the 2796
  line alone, integrated on the noiseless, unconvolved sub-grid profile, equals W. A draw that
  cannot reach W with log N ≤ 17.5 per cloud is drawn again with more, broader clouds.
* The system's velocity zero (truth lambda2796 and z) is the optical-depth-weighted mean velocity
  of the 2796 line, ∫ v τ2796 dv / ∫ τ2796 dv = Σ N_i v_i / Σ N_i: the clouds are shifted so that
  it is 0. Truth also has EW2803 (the 2803 line alone), the number of clouds and subsystems, the
  clouds' velocity spread (dv_extent, max − min of the cloud velocities) and dv90 (the velocity
  interval holding 90 % of the 2796 line's optical depth). Where subsystems are far apart the
  optical-depth-weighted zero can fall between them, in little absorption; truth therefore also
  has lambda2796_centroid, the absorbed-flux-weighted mean wavelength of the 2796 line,
  ∫ λ (1 − e^-τ2796) dλ / ∫ (1 − e^-τ2796) dλ.
* Positions: λ2796 flat over the arms, both lines ≥ 25 Å inside an arm. EW2796 flat in
  `ew_range` (default 0.05-5.15 Å, the paper's) or log-uniform (`ew_distribution`).
  Single-absorber sets: exactly round(fraction × n) spectra hold one (default 50 %). Two-absorber
  sets (`n_absorbers=2`): every sightline holds two MgII systems ≥ 40 Å apart in λ2796, EW2796
  flat in 0.5-4 Å, SNR 20 (the defaults of that mode).
* Noise: SNR (per pixel, at the arm centre) drawn from {3, 5, 10, 20, 30, 40, 50} or given; the
  noise σ falls towards each arm end with a Gaussian roll-off, σ_centre / σ = r^-(1 - d / L)^2
  at d < L pixels from the end, L flat in 200-600 pixels and r flat in 1.5-4 (drawn for each arm
  end). White Gaussian noise; err = σ.

Families:

* ``idealised``: continuum exactly 1, the MgII system(s), white noise, err = σ.
* ``realistic``: the quasar's redshift z_em flat in 1.0-3.6 and above every MgII absorber (by ≥
  5000 km/s); a Lyman-α (and Lyman-β) forest below 1215.67 (1 + z_em) with lines drawn so that
  the mean transmission follows τ_eff(z) = 0.0018 (1 + z)^3.92 (Faucher-Giguère et al. 2008):
  log N_HI from f(N) ∝ N^-1.55 in 12.5-17.3, b log-normal about 26 km/s (10-70), Poisson numbers
  with dn/dz = τ_eff(z) λ_α / ((1 + z) <W_r>); FeII 2600/2586/2382/2344/2374 (each system with
  probability 0.5, log N 0.2-1.2 dex below MgII) and MgI 2852 (probability 0.5, 1.0-2.2 dex below)
  at the MgII system's redshift; interlopers at other redshifts: CIV 1548/1550 and SiIV 1393/1402
  (below z_em), CaII 3934/3969 (z < 0.75) and metal-only systems (FeII + MgI of an MgII system
  whose MgII doublet falls outside the arms); continuum errors (a cubic per arm, a few %);
  quasar emission-line residuals (Gaussian bumps of ±1-5 %, FWHM 2000-8000 km/s, at Lyα, NV,
  OI, CII, SiIV, CIV, HeII, CIII], CII] and MgII of z_em); sky-line residuals (night-sky lines and
  random OH lines, ±2-8 σ, with the noise raised there); 0-6 cosmic rays (positive spikes of 5-40
  σ over 1-2 pixels, not flagged); err misestimated by a factor flat in 0.7-1.3 per spectrum; in
  half the spectra the noise correlated over 2-3 pixels (white noise smoothed by a Gaussian of σ
  0.6-1.2 pixels and renormalised, as resampling makes it; err stays the per-pixel σ).

Everything is deterministic in the seed and independent of how the work is chunked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import fft as sfft
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri, wofz

C_KMS = 299792.458
R_GRID = 20000.0  # pixels per unit ln λ
ARMS = (("blue", 3926.0, 4355.0), ("green", 5160.0, 5730.0), ("red", 6100.0, 6790.0))
SNRS = (3.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0)
EDGE_MARGIN = 25.0  # Å between either MgII line and an arm end
MIN_SEPARATION = 40.0  # Å between the λ2796 of two absorbers of one sightline
OVERSAMPLE = 8  # fine samples per grid pixel (forest, LSF, pixel integration)
SUBSAMPLE = 4  # system sub-samples per fine sample
MARGIN = 64  # fine samples beyond either end of an arm
SYSTEM_REACH = 300.0  # km/s: a system's clouds are rendered this far beyond the outermost cloud
LOGN_CAP = 17.5  # largest column density (log cm^-2) of one cloud
TAU_COEFF = 1.4974e-15  # √π e² / (m_e c) / √π in Å^-1 km/s cm^2: τ0 = TAU_COEFF N f λ0 / b
DV_FINE = C_KMS / (R_GRID * OVERSAMPLE)
DV_SUB = DV_FINE / SUBSAMPLE


@dataclass(frozen=True)
class Line:
    name: str
    lam: float  # vacuum Å
    f: float
    gamma: float  # s^-1


MGII = (Line("MgII2796", 2796.354, 0.6155, 2.625e8), Line("MgII2803", 2803.531, 0.3058, 2.595e8))
FEII = (
    Line("FeII2600", 2600.1725, 0.2394, 2.70e8),
    Line("FeII2586", 2586.6500, 0.06918, 2.72e8),
    Line("FeII2382", 2382.7652, 0.3201, 3.13e8),
    Line("FeII2344", 2344.2139, 0.1142, 2.68e8),
    Line("FeII2374", 2374.4612, 0.0313, 3.09e8),
)
MGI = Line("MgI2852", 2852.9631, 1.83, 4.91e8)
CIV = (Line("CIV1548", 1548.204, 0.1899, 2.643e8), Line("CIV1550", 1550.781, 0.09475, 2.628e8))
SIIV = (Line("SiIV1393", 1393.7602, 0.5140, 8.80e8), Line("SiIV1402", 1402.7729, 0.2553, 8.63e8))
CAII = (Line("CaII3934", 3934.777, 0.6267, 1.444e8), Line("CaII3969", 3969.591, 0.3116, 1.409e8))
LYA = Line("HI1215", 1215.6701, 0.4164, 6.265e8)
LYB = Line("HI1025", 1025.7223, 0.07912, 1.897e8)
# Quasar emission lines (rest, vacuum Å) whose continuum-fit residuals are modelled.
EMISSION = (1215.67, 1240.14, 1304.35, 1335.30, 1399.8, 1549.06, 1640.42, 1908.73, 2326.4, 2798.75)
# Night-sky lines (vacuum Å): [OI] 5577, Na D, [OI] 6300/6364, Hg 4047/5461, bright OH in the red.
SKY_LINES = (
    4047.7, 5462.3, 5578.9, 5891.6, 5897.6, 6302.0, 6365.5, 6259.7, 6289.2, 6308.7, 6331.7,
    6467.2, 6500.5, 6534.8, 6555.4, 6579.1, 6606.0, 6687.5, 6714.3,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The grid


def _arm_npix(lo: float, hi: float) -> int:
    k = int(np.floor(R_GRID * np.log(hi / lo)))
    while lo * np.exp((k + 1) / R_GRID) <= hi:
        k += 1
    while lo * np.exp(k / R_GRID) > hi:
        k -= 1
    return k + 1


ARM_NPIX = tuple(_arm_npix(lo, hi) for _, lo, hi in ARMS)
ARM_START = tuple(int(x) for x in np.cumsum((0, *ARM_NPIX))[:-1])
N_PIX = int(sum(ARM_NPIX))
LN_LO = tuple(float(np.log(lo)) for _, lo, _ in ARMS)
# The fine grid: per arm, OVERSAMPLE samples per pixel plus MARGIN samples at either end.
FINE_LEN = tuple(n * OVERSAMPLE + 2 * MARGIN for n in ARM_NPIX)
FINE_START = tuple(int(x) for x in np.cumsum((0, *FINE_LEN))[:-1])
N_FINE = int(sum(FINE_LEN))


def wavelength() -> np.ndarray:
    """Pixel centres (Å, vacuum) of the grid, gaps stripped: shape (6315,)."""
    return np.concatenate(
        [lo * np.exp(np.arange(n) / R_GRID) for (_, lo, _), n in zip(ARMS, ARM_NPIX, strict=True)]
    )


def arm_of_pixel() -> np.ndarray:
    return np.repeat(np.arange(len(ARMS)), ARM_NPIX)


def _fine_coord(arm: int, lnlam: np.ndarray | float) -> np.ndarray | float:
    """Fine-sample coordinate (block-local) of ln λ in an arm's fine block: sample j's centre
    lies at pixel coordinate (j − MARGIN + 0.5) / OVERSAMPLE − 0.5."""
    return ((lnlam - LN_LO[arm]) * R_GRID + 0.5) * OVERSAMPLE + MARGIN - 0.5


def _lnlam_of_fine(arm: int, j: np.ndarray) -> np.ndarray:
    return LN_LO[arm] + ((j - MARGIN + 0.5) / OVERSAMPLE - 0.5) / R_GRID


def lambda2796_ranges(margin: float = EDGE_MARGIN) -> list[tuple[float, float]]:
    """Per arm, the λ2796 interval that keeps both MgII lines ≥ margin Å inside it."""
    ratio = MGII[1].lam / MGII[0].lam
    return [(lo + margin, (hi - margin) / ratio) for _, lo, hi in ARMS]


def _draw_lambda2796(rng: np.random.Generator, n: int) -> np.ndarray:
    r = np.array(lambda2796_ranges())
    width = r[:, 1] - r[:, 0]
    u = rng.random(n) * width.sum()
    cum = np.cumsum(width)
    a = np.searchsorted(cum, u, side="right").clip(0, len(ARMS) - 1)
    return r[a, 0] + (u - (cum[a] - width[a]))


# ---------------------------------------------------------------------------------------------
# Kinematics


@dataclass
class Clouds:
    v: np.ndarray  # km/s, relative to the system's velocity zero
    b: np.ndarray  # km/s
    logn: np.ndarray  # relative log N (offset fixed later)
    n_sub: int


def _truncated_lognormal(rng, n, median, sigma, lo, hi) -> np.ndarray:  # type: ignore[no-untyped-def]
    a, b = ndtr((np.log(lo) - np.log(median)) / sigma), ndtr((np.log(hi) - np.log(median)) / sigma)
    u = a + (b - a) * rng.random(n)
    return np.exp(np.log(median) + sigma * ndtri(np.clip(u, 1e-300, 1 - 1e-16)))


def draw_clouds(rng: np.random.Generator, ew: float, boost: int = 0) -> Clouds:
    """The clouds of an MgII system of target rest EW2796 `ew` (Å); `boost` > 0 after failed
    draws: more and broader clouds."""
    n_sub = 1 + rng.binomial(4, min(0.85, 0.08 + 0.22 * ew))
    dv = float(np.exp(np.log(25.0 + 110.0 * ew) + 0.4 * rng.standard_normal()))
    dv = min(max(dv, 80.0 * ew, 3.0), 900.0)
    median_n = 1.5 + 8.0 * ew
    n_cl = round(np.exp(np.log(median_n) + 0.5 * rng.standard_normal()))
    n_min = int(np.ceil(ew / 0.15)) if ew > 1.0 else 1
    n_cl = int(np.clip(max(n_cl, n_min, n_sub) * 1.5**boost, 1, 60))
    n_sub = min(n_sub, n_cl)
    # subsystems: centres over [0, dv] (the first two at the ends), weights, dispersions
    if n_sub == 1:
        centres = np.zeros(1)
        disp = np.array([max(dv / 4.0, 1.0)])
    else:
        centres = np.sort(np.r_[0.0, dv, rng.random(n_sub - 2) * dv])
        disp = rng.uniform(0.12, 0.3, n_sub) * dv / n_sub + 3.0
    w = np.exp(rng.standard_normal(n_sub))
    w[rng.integers(n_sub)] *= 5.0  # one subsystem dominates
    counts = 1 + rng.multinomial(n_cl - n_sub, w / w.sum())
    sub = np.repeat(np.arange(n_sub), counts)
    v = centres[sub] + disp[sub] * rng.standard_normal(n_cl)
    b = _truncated_lognormal(rng, n_cl, 7.0 * 1.3**boost, 0.6, 1.0, 30.0)
    logn = np.log10(w[sub] / w.max()) + 0.45 * rng.standard_normal(n_cl) + 12.0
    return Clouds(v=v, b=b, logn=logn, n_sub=n_sub)


def _shift_to_tau_mean(c: Clouds) -> Clouds:
    """The velocity zero at the 2796 line's optical-depth-weighted mean velocity: ∫τ(v) dv ∝ N
    for each cloud, whose profile is symmetric about v_i, so the mean is Σ N_i v_i / Σ N_i."""
    nn = 10.0 ** (c.logn - c.logn.max())
    return Clouds(v=c.v - np.sum(nn * c.v) / nn.sum(), b=c.b, logn=c.logn, n_sub=c.n_sub)


# ---------------------------------------------------------------------------------------------
# Rendering of absorption systems on the sub-grid


def _tau0(line: Line, logn: np.ndarray, b: np.ndarray) -> np.ndarray:
    return TAU_COEFF * 10.0**logn * line.f * line.lam / b


def _damping(line: Line, b: np.ndarray) -> np.ndarray:
    return line.gamma * line.lam * 1e-8 / (4.0 * np.pi * b * 1e5)


@dataclass
class _Block:
    arm: int
    j0: int  # first fine sample (block-local to the arm)
    j1: int  # one past the last
    lines: list[int]  # indices into the system's line list

    @property
    def n_sub(self) -> int:
        return (self.j1 - self.j0) * SUBSAMPLE

    def lnlam(self) -> np.ndarray:
        t = np.arange(self.n_sub)
        return _lnlam_of_fine(self.arm, self.j0 - 0.5 + (t + 0.5) / SUBSAMPLE)

    def sub_coord(self, lnlam: np.ndarray | float) -> np.ndarray | float:
        return (_fine_coord(self.arm, lnlam) - (self.j0 - 0.5)) * SUBSAMPLE - 0.5


def _blocks(lines: Sequence[Line], z: float, vlo: float, vhi: float) -> list[_Block]:
    """Sub-grid blocks covering each line from vlo to vhi (km/s) about its centre, merged where
    they overlap, clipped to the arms' fine blocks; lines outside every arm are dropped."""
    segs: list[tuple[int, int, int, int]] = []
    for k, line in enumerate(lines):
        c = np.log(line.lam * (1.0 + z))
        for a in range(len(ARMS)):
            j0 = int(np.floor(_fine_coord(a, c + vlo / C_KMS)))
            j1 = int(np.ceil(_fine_coord(a, c + vhi / C_KMS))) + 1
            j0, j1 = max(j0, 0), min(j1, FINE_LEN[a])
            if j0 < j1:
                segs.append((a, j0, j1, k))
    segs.sort()
    out: list[_Block] = []
    for a, j0, j1, k in segs:
        if out and out[-1].arm == a and j0 <= out[-1].j1:
            out[-1].j1 = max(out[-1].j1, j1)
            out[-1].lines.append(k)
        else:
            out.append(_Block(a, j0, j1, [k]))
    return out


def _line_tau(
    block: _Block, line: Line, z: float, c: Clouds, logn: np.ndarray, wings: float | None
) -> np.ndarray:
    """Optical depth of one line of the clouds (at column densities logn) on a block's sub-grid:
    Gaussian cores within ±6 b, and, unless wings is None, the Voigt profile (wofz) for the clouds
    whose damping wings exceed τ 3e-4 beyond 5 b at column densities logn + wings (the final
    ones: τ is linear in N, so the profile at logn is returned either way)."""
    n = block.n_sub
    tau = np.zeros(n)
    centre = block.sub_coord(np.log(line.lam * (1.0 + z)) + c.v / C_KMS)  # sub-sample coords
    b_sub = c.b / DV_SUB
    tau0 = _tau0(line, logn, c.b)
    a = _damping(line, c.b)
    # Doppler cores: one matrix for all clouds
    h = int(np.ceil(6.0 * b_sub.max())) + 1
    idx = np.floor(centre).astype(np.int64)[:, None] + np.arange(-h, h + 1)
    x = (idx - centre[:, None]) / b_sub[:, None]
    prof = tau0[:, None] * np.exp(-np.minimum(x * x, 700.0))
    inside = (idx >= 0) & (idx < n) & (np.abs(x) <= 6.0)
    tau += np.bincount(idx[inside], prof[inside], minlength=n)[:n]
    if wings is None:
        return tau
    # damping wings of the strong clouds: the Voigt profile replaces the core there
    x_wing = np.sqrt(tau0 * 10.0**wings * a / (np.sqrt(np.pi) * 3e-4))
    for i in np.flatnonzero(x_wing > 5.0):
        reach = min(x_wing[i], SYSTEM_REACH / c.b[i]) * b_sub[i]
        lo = max(int(np.floor(centre[i] - reach)), 0)
        hi = min(int(np.ceil(centre[i] + reach)) + 1, n)
        if lo >= hi:
            continue
        xi = (np.arange(lo, hi) - centre[i]) / b_sub[i]
        core = np.where(np.abs(xi) <= 6.0, np.exp(-np.minimum(xi * xi, 700.0)), 0.0)
        tau[lo:hi] += tau0[i] * (wofz(xi + 1j * a[i]).real - core)
    return np.maximum(tau, 0.0)


@dataclass
class SystemResult:
    ews: dict[str, float]  # rest EW of each line alone (Å), for the lines asked for
    logn_offset: float
    dv90: float
    v_centroid: float  # km/s: the absorbed-flux-weighted mean velocity of the target line


def render_system(
    fine: np.ndarray,
    z: float,
    clouds: Clouds,
    lines: Sequence[tuple[Line, float]],
    target: tuple[int, float] | None = None,
    ew_lines: Sequence[int] = (),
) -> SystemResult | None:
    """Multiply one spectrum's fine transmission (N_FINE,) by a system's absorption.

    lines: (line, log N offset of its species from the clouds' logn); target: (index into lines,
    rest EW in Å): the clouds' column densities are scaled together until that line alone has
    this rest EW on the unconvolved sub-grid profile. Returns None (and renders nothing) when
    it cannot be reached with log N ≤ LOGN_CAP."""
    ls = [ln for ln, _ in lines]
    blocks = _blocks(ls, z, clouds.v.min() - SYSTEM_REACH, clouds.v.max() + SYSTEM_REACH)
    if not blocks:
        return SystemResult({}, 0.0, float("nan"), float("nan"))
    dln = 1.0 / (R_GRID * OVERSAMPLE * SUBSAMPLE)
    taus: dict[tuple[int, int], np.ndarray] = {}

    def compute_taus(wings: float | None) -> None:
        """τ per (block, line) at the reference column densities."""
        for bi, blk in enumerate(blocks):
            for k in blk.lines:
                logn = clouds.logn + lines[k][1]
                taus[bi, k] = _line_tau(blk, ls[k], z, clouds, logn, wings)

    def line_arrays(k: int) -> tuple[np.ndarray, np.ndarray]:
        ts, ws = [], []
        for bi, blk in enumerate(blocks):
            if (bi, k) in taus:
                ts.append(taus[bi, k])
                ws.append(np.exp(blk.lnlam()) / (1.0 + z) * dln)  # rest-frame dλ per sample
        if not ts:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(ts), np.concatenate(ws)

    def ew_of(t: np.ndarray, w: np.ndarray, delta: float) -> float:
        return float(np.sum(-np.expm1(-(10.0**delta) * t) * w))

    def solve(k: int, ew_target: float) -> float | None:
        t, w = line_arrays(k)
        if t.size == 0:
            return None
        hi = LOGN_CAP - float(np.max(clouds.logn + lines[k][1]))
        lo = hi - 14.0

        def f(d: float) -> float:
            return float(np.log(max(ew_of(t, w, d), 1e-300)) - np.log(ew_target))

        if f(hi) < 0.0 or f(lo) > 0.0:
            return None
        return float(brentq(f, lo, hi, xtol=1e-10, rtol=1e-12))

    delta = 0.0
    if target is None:
        compute_taus(0.0)
    else:
        # the Doppler cores give the column densities, which say whose damping wings matter;
        # then the Voigt profiles give the final scaling
        compute_taus(None)
        d0 = solve(*target)
        if d0 is None:
            return None
        compute_taus(d0)
        d1 = solve(*target)
        if d1 is None:
            return None
        delta = d1
    for bi, blk in enumerate(blocks):
        tau = (10.0**delta) * sum(taus[bi, k] for k in blk.lines)
        trans = np.exp(-tau).reshape(-1, SUBSAMPLE).mean(axis=1)
        s = FINE_START[blk.arm]
        fine[s + blk.j0 : s + blk.j1] *= trans
    ews = {}
    for k in ew_lines:
        t, w = line_arrays(k)
        ews[ls[k].name] = ew_of(t, w, delta)
    dv90 = v_centroid = float("nan")
    if target is not None:
        t, w = line_arrays(target[0])
        lnl = np.concatenate(
            [blk.lnlam() for bi, blk in enumerate(blocks) if (bi, target[0]) in taus]
        )
        v = C_KMS * (lnl - np.log(ls[target[0]].lam * (1.0 + z)))
        cum = np.cumsum(t)
        if cum[-1] > 0:
            v5, v95 = np.interp([0.05 * cum[-1], 0.95 * cum[-1]], cum, v)
            dv90 = float(v95 - v5)
        absorbed = -np.expm1(-(10.0**delta) * t) * w
        v_centroid = float(np.sum(v * absorbed) / np.sum(absorbed))
    return SystemResult(ews, delta, dv90, v_centroid)


def mgii_system(
    fine: np.ndarray,
    rng: np.random.Generator,
    lam2796: float,
    ew: float,
    metals: Sequence[tuple[Line, float]] = (),
) -> dict[str, float]:
    """An MgII system of rest EW2796 `ew` at observed λ2796 `lam2796` (its velocity zero), with
    optional metal lines (line, log N offset from MgII) on the same clouds; returns its truth."""
    z = lam2796 / MGII[0].lam - 1.0
    for boost in range(12):
        c = _shift_to_tau_mean(draw_clouds(rng, ew, boost))
        lines = [(MGII[0], 0.0), (MGII[1], 0.0), *metals]
        r = render_system(fine, z, c, lines, target=(0, ew), ew_lines=(0, 1))
        if r is not None:
            return {
                "ew2796": r.ews[MGII[0].name],
                "ew2803": r.ews[MGII[1].name],
                "n_clouds": float(c.v.size),
                "n_subsystems": float(c.n_sub),
                "dv_extent": float(c.v.max() - c.v.min()),
                "dv90": r.dv90,
                "lambda2796_centroid": lam2796 * float(np.exp(r.v_centroid / C_KMS)),
                "logn_max": float(c.logn.max() + r.logn_offset),
            }
    raise RuntimeError(f"heldout_mock: no kinematics reach EW2796 = {ew} Å")  # not seen in tests


def _other_system(fine, rng, z, lines, ew) -> None:  # type: ignore[no-untyped-def]
    """An interloper: the clouds of an MgII-like system, scaled so that the first line has rest
    EW `ew`."""
    for boost in range(12):
        c = _shift_to_tau_mean(draw_clouds(rng, ew, boost))
        if render_system(fine, z, c, lines, target=(0, ew)) is not None:
            return


# ---------------------------------------------------------------------------------------------
# The Lyman-α forest


FOREST_LOGN = (12.5, 17.3)
FOREST_BETA = 1.55
FOREST_B = (26.0, 0.28, 10.0, 70.0)  # median, σ_ln, lo, hi (km/s)


def _forest_draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = 10.0 ** np.array(FOREST_LOGN)
    g = 1.0 - FOREST_BETA
    u = rng.random(n)
    logn = np.log10((lo**g + u * (hi**g - lo**g)) ** (1.0 / g))
    b = _truncated_lognormal(rng, n, *FOREST_B)
    return logn, b


@cache
def forest_mean_rest_ew() -> float:
    """<W_r> of a Lyα line under the forest's N and b distributions (Å): a curve of growth on a
    (log N, b) table, averaged over 20,000 draws of a fixed generator."""
    logn, b = _forest_draw(np.random.default_rng(12345), 20000)
    ln_grid = np.linspace(*FOREST_LOGN, 25)
    b_grid = np.geomspace(FOREST_B[2], FOREST_B[3], 9)
    x = np.linspace(-300.0, 300.0, 24001)
    table = np.zeros((ln_grid.size, b_grid.size))
    for j, bb in enumerate(b_grid):
        a = _damping(LYA, np.array(bb))
        h = wofz(x + 1j * a).real
        for i, nn in enumerate(ln_grid):
            tau0 = _tau0(LYA, np.array(nn), np.array(bb))
            table[i, j] = np.trapezoid(-np.expm1(-tau0 * h), x) * bb * LYA.lam / C_KMS
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator((ln_grid, np.log(b_grid)), np.log(table))
    return float(np.mean(np.exp(interp(np.c_[logn, np.log(b)]))))


def tau_eff(z: np.ndarray | float) -> np.ndarray | float:
    """Lyα effective optical depth (Faucher-Giguère et al. 2008)."""
    return 0.0018 * (1.0 + np.asarray(z)) ** 3.92


def _forest(fine_tau: np.ndarray, rng: np.random.Generator, z_em: float) -> int:
    """Add the Lyα/Lyβ forest's optical depth (on the fine grid) of a quasar at z_em; returns
    the number of lines drawn."""
    z_lo = ARMS[0][1] * np.exp(-MARGIN / OVERSAMPLE / R_GRID) / LYA.lam - 1.0
    if z_em <= z_lo:
        return 0
    # dn/dz = A (1 + z)^2.92, A = 0.0018 λα / <W_r>: the number and the redshifts
    k = 3.92
    amp = 0.0018 * LYA.lam / forest_mean_rest_ew()
    lam_n = amp / k * ((1 + z_em) ** k - (1 + z_lo) ** k)
    n = int(rng.poisson(lam_n))
    u = rng.random(n)
    z = ((1 + z_lo) ** k + u * ((1 + z_em) ** k - (1 + z_lo) ** k)) ** (1 / k) - 1.0
    logn, b = _forest_draw(rng, n)
    for line in (LYA, LYB):
        lnc = np.log(line.lam * (1.0 + z))
        for a in range(len(ARMS)):
            jc = _fine_coord(a, lnc)
            m = (jc > -200) & (jc < FINE_LEN[a] + 200)
            if not m.any():
                continue
            _deposit(fine_tau, a, jc[m], b[m], _tau0(line, logn[m], b[m]), _damping(line, b[m]))
    return n


def _deposit(fine_tau, arm, jc, b, tau0, a) -> None:  # type: ignore[no-untyped-def]
    """Lines at fine coordinates jc: Gaussian cores, Voigt (wofz) where the wings matter, each
    out to where τ < 1e-3; windows grouped by size so that each group is one array operation."""
    b_f = b / DV_FINE
    voigt = tau0 * a > 1e-2
    x_max = np.sqrt(np.log(np.maximum(tau0, 1e-3) / 1e-3) + 1.0)
    x_max = np.where(voigt, np.maximum(x_max, np.sqrt(tau0 * a / (np.sqrt(np.pi) * 1e-3))), x_max)
    half = np.ceil(x_max * b_f).astype(np.int64) + 1
    bucket = 2 ** np.ceil(np.log2(np.maximum(half, 4))).astype(np.int64)
    s = FINE_START[arm]
    n = FINE_LEN[arm]
    for h in np.unique(bucket):
        for use_voigt in (False, True):
            m = (bucket == h) & (voigt == use_voigt)
            if not m.any():
                continue
            idx = np.floor(jc[m]).astype(np.int64)[:, None] + np.arange(-h, h + 1)
            x = (idx - jc[m][:, None]) / b_f[m][:, None]
            if use_voigt:
                prof = wofz(x + 1j * a[m][:, None]).real
            else:
                prof = np.exp(-np.minimum(x * x, 700.0))
            ok = (idx >= 0) & (idx < n) & (np.abs(x) <= x_max[m][:, None])
            fine_tau[s : s + n] += np.bincount(idx[ok], (tau0[m][:, None] * prof)[ok], minlength=n)[
                :n
            ]


# ---------------------------------------------------------------------------------------------
# LSF and pixel integration


def lsf_and_bin(fine: np.ndarray, resolving_power: np.ndarray) -> np.ndarray:
    """(n, N_FINE) transmission → (n, N_PIX): Gaussian LSF of FWHM λ/R per row (FFT, per arm;
    the arm margins absorb the circular wrap), then the mean of each pixel's samples."""
    out = np.empty((fine.shape[0], N_PIX))
    sigma = OVERSAMPLE * R_GRID / (resolving_power * np.sqrt(8.0 * np.log(2.0)))  # fine samples
    for a in range(len(ARMS)):
        s, n = FINE_START[a], FINE_LEN[a]
        spec = sfft.rfft(fine[:, s : s + n], axis=1)
        k = np.arange(spec.shape[1]) / n
        spec *= np.exp(-2.0 * np.pi**2 * (sigma[:, None] * k[None, :]) ** 2)
        conv = sfft.irfft(spec, n=n, axis=1)[:, MARGIN : n - MARGIN]
        p0 = ARM_START[a]
        out[:, p0 : p0 + ARM_NPIX[a]] = conv.reshape(fine.shape[0], ARM_NPIX[a], OVERSAMPLE).mean(2)
    return out


# ---------------------------------------------------------------------------------------------
# Noise and the realistic family's defects


def snr_shape(rng: np.random.Generator) -> np.ndarray:
    """Per pixel, SNR relative to the arm centre: a Gaussian roll-off at each arm end."""
    out = np.ones(N_PIX)
    for a in range(len(ARMS)):
        n = ARM_NPIX[a]
        k = np.arange(n)
        shape = np.ones(n)
        for d in (k, n - 1 - k):
            length = rng.uniform(200.0, 600.0)
            ratio = rng.uniform(1.5, 4.0)
            t = np.clip((length - d) / length, 0.0, None)
            shape *= np.exp(-np.log(ratio) * t * t)
        out[ARM_START[a] : ARM_START[a] + n] = shape
    return out


def _continuum_error(rng: np.random.Generator, z_em: float) -> np.ndarray:
    """Multiplicative: a cubic per arm (a few %) times emission-line residual bumps."""
    out = np.ones(N_PIX)
    lam = wavelength()
    for a in range(len(ARMS)):
        n = ARM_NPIX[a]
        x = np.linspace(-1.0, 1.0, n)
        coef = rng.normal(0.0, [0.012, 0.012, 0.008, 0.006])
        out[ARM_START[a] : ARM_START[a] + n] = 1.0 + np.polynomial.legendre.legval(x, coef)
    for rest in EMISSION:
        centre = rest * (1.0 + z_em)
        amp = rng.uniform(0.01, 0.05) * rng.choice((-1.0, 1.0))
        sig = rng.uniform(2000.0, 8000.0) / np.sqrt(8.0 * np.log(2.0)) / C_KMS
        if not any(lo - 300 < centre < hi + 300 for _, lo, hi in ARMS):
            continue
        out *= 1.0 + amp * np.exp(-0.5 * (np.log(lam / centre) / sig) ** 2)
    return out


def _sky(rng: np.random.Generator, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky-subtraction residuals (additive) and the factor by which they raise the noise."""
    lam = wavelength()
    lines = [x for x in SKY_LINES if rng.random() < 0.6]
    lines += list(rng.uniform(6100.0, 6790.0, rng.poisson(6)))
    lines += list(rng.uniform(5160.0, 5730.0, rng.poisson(2)))
    resid = np.zeros(N_PIX)
    boost2 = np.ones(N_PIX)
    for c in lines:
        p = np.searchsorted(lam, c)
        if p <= 0 or p >= N_PIX or lam[p] / lam[p - 1] > 1.001:  # outside the arms
            continue
        lo, hi = max(p - 6, 0), min(p + 6, N_PIX)
        u = R_GRID * np.log(lam[lo:hi] / c)  # pixels from the line
        w = rng.uniform(0.5, 0.8)  # σ of the sky line, pixels
        g = np.exp(-0.5 * (u / w) ** 2)
        amp = rng.uniform(2.0, 8.0) * rng.choice((-1.0, 1.0))
        shift = rng.normal(0.0, 0.5)  # wavelength misalignment: a P-Cygni-like derivative term
        resid[lo:hi] += sigma[lo:hi] * (amp * g - shift * amp * u / w * g)
        boost2[lo:hi] += (rng.uniform(1.0, 4.0) * g) ** 2
    return resid, np.sqrt(boost2)


def _cosmics(rng: np.random.Generator, sigma: np.ndarray) -> tuple[np.ndarray, int]:
    out = np.zeros(N_PIX)
    n = int(rng.integers(0, 7))
    for _ in range(n):
        p = int(rng.integers(0, N_PIX - 1))
        width = int(rng.integers(1, 3))
        out[p : p + width] += (
            rng.uniform(5.0, 40.0) * sigma[p : p + width] * rng.uniform(0.5, 1.0, width)
        )
    return out, n


def _correlated(rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise correlated over 2-3 pixels: white noise smoothed by a Gaussian (σ
    0.6-1.2 pixels) whose taps have unit sum of squares, arm by arm."""
    s = rng.uniform(0.6, 1.2)
    h = int(np.ceil(4 * s))
    k = np.exp(-0.5 * (np.arange(-h, h + 1) / s) ** 2)
    k /= np.sqrt(np.sum(k * k))
    out = np.empty(N_PIX)
    for a in range(len(ARMS)):
        n = ARM_NPIX[a]
        white = rng.standard_normal(n + 2 * h)
        out[ARM_START[a] : ARM_START[a] + n] = np.convolve(white, k, mode="valid")
    return out


# ---------------------------------------------------------------------------------------------
# The public API


def _child_rngs(seed: int | Sequence[int], n: int) -> tuple[np.random.Generator, list]:
    ss = np.random.SeedSequence(seed)
    main, kids = ss.spawn(2)
    return np.random.default_rng(main), kids.spawn(n)


def _draw_pair(rng: np.random.Generator) -> np.ndarray:
    while True:
        lam = _draw_lambda2796(rng, 2)
        if abs(lam[1] - lam[0]) >= MIN_SEPARATION:
            return np.sort(lam)


def generate(
    n: int,
    family: str = "idealised",
    seed: int | Sequence[int] = 0,
    snr: float | Sequence[float] | None = None,
    absorber_fraction: float | None = None,
    n_absorbers: int = 1,
    ew_range: tuple[float, float] | None = None,
    ew_distribution: str = "flat",
    resolving_power: tuple[float, float] = (17000.0, 23000.0),
    return_noiseless: bool = False,
    chunk: int = 64,
) -> dict:
    """n held-out mock spectra on the 4MOST grid.

    family: "idealised" or "realistic" (module docstring). snr: None (each spectrum's SNR drawn
    from SNRS; for n_absorbers=2 all at 20), one value, or a list to draw from. absorber_fraction:
    the fraction of spectra with absorbers, exactly round(fraction × n) of them, placed at random
    (default 0.5; 1.0 for n_absorbers=2). ew_range: rest EW2796 range in Å (default (0.05, 5.15);
    (0.5, 4.0) for n_absorbers=2); ew_distribution: "flat" or "loguniform".

    Returns dict(flux (n, 6315) float32, err float32, wave (6315,), truth: dict of arrays,
    [noiseless (n, 6315) float32: the flux before noise, sky residuals and cosmic rays]).
    truth per spectrum: has_absorber, snr, resolving_power, z_em (NaN: idealised), err_scale, and
    for the absorbers (shape (n,) for n_absorbers=1, (n, 2) ordered by λ for 2; NaN / 0 where
    there is none): lambda2796, z, ew2796, ew2803, n_clouds, n_subsystems, dv_extent, dv90,
    lambda2796_centroid (the 2796 line's absorbed-flux-weighted mean wavelength),
    in_forest (λ2803 below Lyα of z_em), has_feii, has_mgi.
    """
    if family not in ("idealised", "realistic"):
        raise ValueError(f"family: expected 'idealised' or 'realistic', got {family!r}")
    if n_absorbers not in (1, 2):
        raise ValueError(f"n_absorbers: expected 1 or 2, got {n_absorbers!r}")
    if ew_distribution not in ("flat", "loguniform"):
        raise ValueError(
            f"ew_distribution: expected 'flat' or 'loguniform', got {ew_distribution!r}"
        )
    realistic = family == "realistic"
    if ew_range is None:
        ew_range = (0.05, 5.15) if n_absorbers == 1 else (0.5, 4.0)
    if absorber_fraction is None:
        absorber_fraction = 0.5 if n_absorbers == 1 else 1.0
    if snr is None and n_absorbers == 2:
        snr = 20.0
    rng, kids = _child_rngs(seed, n)
    m = n_absorbers
    # per-spectrum draws, all from the main generator
    snr_choices = np.asarray(SNRS if snr is None else np.atleast_1d(snr), np.float64)
    snr_v = snr_choices[rng.integers(0, snr_choices.size, n)]
    has = np.zeros(n, bool)
    has[rng.permutation(n)[: round(absorber_fraction * n)]] = True
    lam = np.full((n, m), np.nan)
    for i in np.flatnonzero(has):
        lam[i] = _draw_pair(rng) if m == 2 else _draw_lambda2796(rng, 1)
    lo, hi = ew_range
    u = rng.random((n, m))
    ew_t = lo + u * (hi - lo) if ew_distribution == "flat" else lo * (hi / lo) ** u
    ew_t = np.where(np.isfinite(lam), ew_t, np.nan)
    rp = rng.uniform(*resolving_power, n)
    z_abs_max = np.nanmax(np.where(np.isfinite(lam), lam / MGII[0].lam - 1.0, 0.0), axis=1)
    z_em_min = np.maximum(1.0, (1.0 + z_abs_max) * np.exp(5000.0 / C_KMS) - 1.0)
    z_em = z_em_min + rng.random(n) * (3.6 - z_em_min) if realistic else np.full(n, np.nan)
    err_scale = rng.uniform(0.7, 1.3, n) if realistic else np.ones(n)
    correlated = (rng.random(n) < 0.5) if realistic else np.zeros(n, bool)

    keys = (
        "ew2796", "ew2803", "n_clouds", "n_subsystems", "dv_extent", "dv90", "lambda2796_centroid"
    )  # fmt: skip
    abs_truth = {k: np.full((n, m), np.nan) for k in keys}
    has_feii = np.zeros((n, m), bool)
    has_mgi = np.zeros((n, m), bool)
    extra = {k: np.zeros(n, np.int32) for k in ("n_forest_lines", "n_interlopers", "n_cosmics")}
    flux = np.empty((n, N_PIX), np.float32)
    err = np.empty((n, N_PIX), np.float32)
    noiseless = np.empty((n, N_PIX), np.float32) if return_noiseless else None
    buf = np.empty((min(chunk, n), N_FINE))
    cont = np.empty((min(chunk, n), N_PIX))
    add = np.empty((min(chunk, n), N_PIX))
    for c0 in range(0, n, chunk):
        c1 = min(c0 + chunk, n)
        for i in range(c0, c1):
            r = np.random.default_rng(kids[i])
            tau = np.zeros(N_FINE)
            if realistic:
                extra["n_forest_lines"][i] = _forest(tau, r, z_em[i])
            fine = np.exp(-tau)
            for j in range(m):
                if not np.isfinite(lam[i, j]):
                    continue
                metals: list[tuple[Line, float]] = []
                if realistic and r.random() < 0.5:
                    d = r.uniform(-1.2, -0.2)
                    metals += [(ln, d) for ln in FEII]
                    has_feii[i, j] = True
                if realistic and r.random() < 0.5:
                    metals.append((MGI, r.uniform(-2.2, -1.0)))
                    has_mgi[i, j] = True
                t = mgii_system(fine, r, lam[i, j], ew_t[i, j], metals)
                for k in keys:
                    abs_truth[k][i, j] = t[k]
            if realistic:
                extra["n_interlopers"][i] = _interlopers(fine, r, z_em[i])
                cont[i - c0] = _continuum_error(r, z_em[i])
            else:
                cont[i - c0] = 1.0
            buf[i - c0] = fine
            sigma = 1.0 / (snr_v[i] * snr_shape(r))
            if realistic:
                resid, boost = _sky(r, sigma)
                sigma_true = sigma * boost
                noise = _correlated(r) if correlated[i] else r.standard_normal(N_PIX)
                cr, extra["n_cosmics"][i] = _cosmics(r, sigma)
                add[i - c0] = sigma_true * noise + resid + cr
                err[i] = sigma_true * err_scale[i]
            else:
                add[i - c0] = sigma * r.standard_normal(N_PIX)
                err[i] = sigma
        model = lsf_and_bin(buf[: c1 - c0], rp[c0:c1]) * cont[: c1 - c0]
        flux[c0:c1] = model + add[: c1 - c0]
        if noiseless is not None:
            noiseless[c0:c1] = model
    z = lam / MGII[0].lam - 1.0
    in_forest = np.isfinite(lam) & (
        lam * MGII[1].lam / MGII[0].lam < LYA.lam * (1.0 + z_em)[:, None]
    )
    truth = {
        "has_absorber": has,
        "snr": snr_v.astype(np.float32),
        "resolving_power": rp,
        "z_em": z_em,
        "err_scale": err_scale,
        "correlated_noise": correlated,
        "lambda2796": lam,
        "z": z,
        **abs_truth,
        "in_forest": in_forest,
        "has_feii": has_feii,
        "has_mgi": has_mgi,
        **extra,
    }
    if m == 1:
        truth = {k: (v[:, 0] if v.ndim == 2 else v) for k, v in truth.items()}
    out = {"flux": flux, "err": err, "wave": wavelength(), "truth": truth}
    if noiseless is not None:
        out["noiseless"] = noiseless
    return out


def _interlopers(fine: np.ndarray, r: np.random.Generator, z_em: float) -> int:
    """CIV, SiIV, CaII doublets and metal-only (FeII + MgI) systems at other redshifts."""
    count = 0
    lo_all, hi_all = ARMS[0][1], ARMS[-1][2]
    ratio = MGII[1].lam / MGII[0].lam
    for lines, rate, zmax, ew_hi in (
        (CIV, 1.2, z_em, 1.5),
        (SIIV, 0.6, z_em, 1.0),
        (CAII, 0.25, 0.75, 0.8),
    ):
        zlo = max(lo_all / lines[1].lam - 1.0, 0.0)
        zhi = min(hi_all / lines[0].lam - 1.0, zmax - 0.005)
        if zhi <= zlo:
            continue
        for _ in range(r.poisson(rate)):
            z = r.uniform(zlo, zhi)
            ew = float(np.exp(r.uniform(np.log(0.05), np.log(ew_hi))))
            _other_system(fine, r, z, [(ln, 0.0) for ln in lines], ew)
            count += 1
    # metal-only systems: an MgII absorber whose doublet misses every arm, its FeII and MgI in one
    for _ in range(r.poisson(0.5)):
        z = r.uniform(0.4, min(z_em, 1.9))
        l1, l2 = MGII[0].lam * (1 + z), MGII[0].lam * (1 + z) * ratio
        if any(lo - 30 < l1 < hi + 30 or lo - 30 < l2 < hi + 30 for _, lo, hi in ARMS):
            continue
        ew = float(r.uniform(0.2, 3.0))  # of FeII 2600
        lines = [(FEII[0], 0.0), *[(ln, 0.0) for ln in FEII[1:]], (MGI, r.uniform(-1.0, 0.0))]
        _other_system(fine, r, z, lines, ew)
        count += 1
    return count


def render_absorbers(
    lam2796: np.ndarray,
    ew2796: np.ndarray,
    seed: int | Sequence[int],
    resolving_power: float = 20000.0,
) -> tuple[np.ndarray, dict]:
    """Noiseless transmission (n, 6315) of one MgII system per row (idealised: nothing else) at
    the given observed λ2796 and rest EW2796, convolved to `resolving_power` and binned to the
    grid: profiles to multiply into other spectra. Returns (transmission, truth)."""
    lam2796 = np.atleast_1d(np.asarray(lam2796, np.float64))
    ew2796 = np.broadcast_to(np.asarray(ew2796, np.float64), lam2796.shape)
    _, kids = _child_rngs(seed, lam2796.size)
    fine = np.ones((lam2796.size, N_FINE))
    truth: dict[str, list] = {}
    for i in range(lam2796.size):
        t = mgii_system(fine[i], np.random.default_rng(kids[i]), lam2796[i], ew2796[i])
        for k, v in t.items():
            truth.setdefault(k, []).append(v)
    trans = lsf_and_bin(fine, np.full(lam2796.size, float(resolving_power)))
    out = {k: np.asarray(v) for k, v in truth.items()}
    out["lambda2796"] = lam2796
    return trans, out
