"""Mock 4MOST high-resolution quasar spectra with MgII absorbers: the Python face of the
simulator in the core (``src/core/simulate/simulate.hpp``; docs/simulator.md for the physics).

A spectrum is fixed by (seed, index): the same pair gives the same spectrum on CPU or GPU, in any
batch size, thread count or order, so sets can be generated in pieces, streamed or regenerated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from .atomic import MGII_2796
from .options import parse_device

if TYPE_CHECKING:
    from astropy.table import Table  # untyped: Any to mypy

PAPER_SNR: tuple[float, ...] = (3.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0)
NO_ABSORBER_LAMBDA: float = _core.SIM_NO_ABSORBER_LAMBDA
MAX_ABSORBERS: int = _core.SIM_MAX_ABSORBERS
INTERLOPER_KINDS: tuple[str, ...] = (
    "MgII", "CIV", "SiIV", "AlIII", "single", "NaI", "CaII", "FeII", "MgI", "DLA",
)  # fmt: skip
KINEMATICS: tuple[str, ...] = ("paper", "sky")  # how MgII systems' velocity structure is drawn
FLAG_EW_NOT_REACHED = 1 << 0
FLAG_LINES_TRUNCATED = 1 << 1
FLAG_BAL = 1 << 2
FLAG_DLA = 1 << 3


@dataclass(frozen=True)
class Realism:
    """Departures from the paper's idealised spectra, each off by default (docs/simulator.md).

    ``Realism.survey()`` switches all of them on at the documented survey-like levels.
    """

    metals: bool = False  # FeII 2600/2586/2382/2374/2344 and MgI 2852 beside each MgII absorber
    interloper_rate: float = 0.0  # mean number of CIV/SiIV/AlIII doublets and unrelated lines
    forest: bool = False  # Lyα forest below 1215.67 (1 + z_em)
    unnormalised: bool = False  # quasar continuum with broad emission lines (flux not normalised)
    continuum_error: float = 0.0  # rms of a smooth multiplicative error per arm, e.g. 0.02
    sky_residual: float = 0.0  # rms of sky-line residuals, in units of the noise
    bad_pixel_rate: float = 0.0  # mean number of bad-pixel runs (1-30 pixels) per spectrum
    # Instrument and reduction, and impostors (the sky mode; docs/simulator.md).
    resolution_range: tuple[float, float] = (20000.0, 20000.0)  # LSF R, flat per spectrum
    wavelength_shift_kms: float = 0.0  # rms wavelength-calibration shift per arm
    err_misestimate: float = 0.0  # reported err = σ × U(1 − x, 1 + x) per arm
    correlated_noise: float = 0.0  # neighbour-pixel noise correlation ρ ~ U(0, x)
    random_edges: bool = False  # per-spectrum SNR edge profile and per-arm SNR spread
    cosmic_ray_rate: float = 0.0  # mean number of unmasked spikes per spectrum
    telluric: bool = False  # O2 γ band and H2O lines in the red arm
    impostors: bool = False  # NaI, CaII (also the Galaxy's), FeII 2586/2600, MgI interlopers
    bal_fraction: float = 0.0  # fraction of quasars with BAL troughs
    dla_rate: float = 0.0  # mean number of DLAs with their metals per sightline

    @classmethod
    def survey(cls) -> Realism:
        """The survey-like level of the original switches (the project's realistic test set)."""
        return cls(
            metals=True,
            interloper_rate=1.5,
            forest=True,
            continuum_error=0.02,
            sky_residual=3.0,
            bad_pixel_rate=1.0,
        )

    @classmethod
    def sky(cls) -> Realism:
        """Everything real spectra have, each at a broad level (the sky mode's training data):
        survey() plus instrument and reduction effects and impostors. Use it with
        ``simulate(..., kinematics="sky")``."""
        return cls(
            metals=True,
            interloper_rate=2.0,
            forest=True,
            continuum_error=0.03,
            sky_residual=3.0,
            bad_pixel_rate=1.0,
            resolution_range=(15000.0, 25000.0),
            wavelength_shift_kms=3.0,
            err_misestimate=0.3,
            correlated_noise=0.5,
            random_edges=True,
            cosmic_ray_rate=2.0,
            telluric=True,
            impostors=True,
            bal_fraction=0.1,
            dla_rate=0.2,
        )

    def _set_core_fields(self, o: _core.SimulateOptions) -> None:
        """Set these switches on the core's SimulateOptions (checked by the simulate call)."""
        o.metals = bool(self.metals)
        o.interloper_rate = float(self.interloper_rate)
        o.forest = bool(self.forest)
        o.unnormalised = bool(self.unnormalised)
        o.continuum_error = float(self.continuum_error)
        o.sky_residual = float(self.sky_residual)
        o.bad_pixel_rate = float(self.bad_pixel_rate)
        o.resolution_min = float(self.resolution_range[0])
        o.resolution_max = float(self.resolution_range[1])
        o.wavelength_shift_kms = float(self.wavelength_shift_kms)
        o.err_misestimate = float(self.err_misestimate)
        o.correlated_noise = float(self.correlated_noise)
        o.random_edges = bool(self.random_edges)
        o.cosmic_ray_rate = float(self.cosmic_ray_rate)
        o.telluric = bool(self.telluric)
        o.impostors = bool(self.impostors)
        o.bal_fraction = float(self.bal_fraction)
        o.dla_rate = float(self.dla_rate)


@dataclass(frozen=True)
class Truth:
    """What was simulated, per spectrum. Absorber arrays are (N, MAX_ABSORBERS), NaN-padded.

    ``lambda2796``, ``z``, ``ew2796``, ``ew2803`` describe the first absorber (the only one in the
    paper's setup), with the paper's label 5358 Å and NaN when there is none.
    """

    index: np.ndarray
    n_absorbers: np.ndarray
    snr: np.ndarray
    z_em: np.ndarray
    flags: np.ndarray
    resolution: np.ndarray  # LSF R each spectrum was rendered at
    abs_z: np.ndarray
    abs_ew2796: np.ndarray
    abs_ew2803: np.ndarray
    abs_ew2796_requested: np.ndarray
    abs_logn: np.ndarray
    abs_n_components: np.ndarray
    comp_logn: np.ndarray
    comp_b: np.ndarray
    comp_v: np.ndarray
    n_interlopers: np.ndarray
    interloper_kind: np.ndarray
    interloper_z: np.ndarray

    @property
    def has_absorber(self) -> np.ndarray:
        return self.n_absorbers > 0

    @property
    def abs_lambda2796(self) -> np.ndarray:
        return MGII_2796.wavelength * (1.0 + self.abs_z)

    @property
    def lambda2796(self) -> np.ndarray:
        lam = self.abs_lambda2796[:, 0]
        return np.where(self.has_absorber, lam, NO_ABSORBER_LAMBDA)

    @property
    def z(self) -> np.ndarray:
        return self.abs_z[:, 0]

    @property
    def ew2796(self) -> np.ndarray:
        return self.abs_ew2796[:, 0]

    @property
    def ew2803(self) -> np.ndarray:
        return self.abs_ew2803[:, 0]

    def __len__(self) -> int:
        return int(self.index.size)

    def columns(self) -> dict[str, np.ndarray]:
        """Every column, the per-spectrum summary first (for tables and files)."""
        out = {
            "index": self.index,
            "has_absorber": self.has_absorber,
            "lambda2796": self.lambda2796,
            "z": self.z,
            "ew2796": self.ew2796,
            "ew2803": self.ew2803,
            "snr": self.snr,
            "z_em": self.z_em,
            "n_absorbers": self.n_absorbers,
            "flags": self.flags,
            "abs_lambda2796": self.abs_lambda2796,
        }
        for k in self.__dataclass_fields__:
            out.setdefault(k, getattr(self, k))
        return out

    def to_table(self) -> Table:
        """The truth as an astropy Table (astropy must be installed)."""
        from astropy.table import Table

        return Table(self.columns())


@dataclass(frozen=True)
class Simulation:
    """A batch of simulated spectra on the grid: flux and err are (N, N_PIX) float32."""

    flux: np.ndarray
    err: np.ndarray
    truth: Truth
    seed: int
    clean: np.ndarray | None = field(default=None)  # noiseless transmission, when asked for

    def __len__(self) -> int:
        return int(self.flux.shape[0])


def _snr_values(snr: float | Sequence[float]) -> np.ndarray:
    a = np.atleast_1d(np.asarray(snr, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError("snr: give a number or a non-empty list of numbers")
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"snr: values must be positive and finite, got {a.tolist()}")
    return a


def simulate(
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    snr: float | Sequence[float] = PAPER_SNR,
    with_absorber_fraction: float = 0.8,
    max_absorbers: int = 1,
    ew_range: tuple[float, float] = (0.05, 5.15),
    noise: bool = True,
    realism: Realism | None = None,
    edge_margin: float = 25.0,
    edge_snr_ratio: float = 2.5,
    edge_taper_pixels: int = 420,
    z_em_range: tuple[float, float] = (1.0, 3.6),
    return_clean: bool = False,
    device: str = "cpu",
    threads: int = 0,
    kinematics: str = "paper",
    blend_fraction: float = 0.0,
) -> Simulation:
    """Simulate spectra ``start`` … ``start + n - 1`` of the set fixed by ``seed``.

    Defaults follow the paper's training set: one absorber in 80 % of spectra, λ2796 flat over the
    arms (both lines ≥ 25 Å from an arm edge), rest EW2796 flat in 0.05-5.15 Å, SNR at the arm
    centre drawn from {3, 5, 10, 20, 30, 40, 50} and falling 2.5× towards the arm ends over 420
    pixels, Gaussian noise, continuum-normalised flux. ``with_absorber_fraction=0.5`` gives the
    paper's test set; ``max_absorbers`` up to 4 puts 1-4 non-overlapping absorbers in a sightline;
    ``realism`` adds what real spectra have (see ``Realism``).

    ``kinematics="sky"`` draws each MgII system's velocity structure from laws that are themselves
    random (up to 40 components in up to 6 subsystems over up to 820 km/s, b 1-30 km/s; the
    system's redshift is its λ2796 absorption centroid), and ``blend_fraction`` puts that share of
    the absorbers after the first 150-500 km/s from the first (docs/simulator.md, "The sky mode").
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2^64), got {seed!r}")
    if not isinstance(start, (int, np.integer)) or not 0 <= start < 2**63:
        raise ValueError(f"start: expected a non-negative integer, got {start!r}")
    if not 0.0 <= with_absorber_fraction <= 1.0:
        raise ValueError(
            f"with_absorber_fraction: must lie in [0, 1], got {with_absorber_fraction}"
        )
    lo, hi = ew_range
    if not 0.0 < lo <= hi <= 7.0:
        raise ValueError(f"ew_range: need 0 < min <= max <= 7 Å (rest EW2796), got {ew_range}")
    if kinematics not in KINEMATICS:
        raise ValueError(f"kinematics: expected one of {KINEMATICS}, got {kinematics!r}")
    snr_values = _snr_values(snr)
    dev = parse_device(device)
    options = _core.SimulateOptions(
        seed=int(seed),
        absorber_fraction=float(with_absorber_fraction),
        max_absorbers=int(max_absorbers),
        ew_min=float(lo),
        ew_max=float(hi),
        edge_margin=float(edge_margin),
        edge_snr_ratio=float(edge_snr_ratio),
        edge_taper_pixels=int(edge_taper_pixels),
        noise=bool(noise),
        z_em_min=float(z_em_range[0]),
        z_em_max=float(z_em_range[1]),
        kinematics=KINEMATICS.index(kinematics),
        blend_fraction=float(blend_fraction),
    )
    (realism or Realism())._set_core_fields(options)
    out, t = _core.simulate(
        int(n), int(start), snr_values, options, bool(return_clean), str(dev), int(threads)
    )
    truth = Truth(index=np.arange(start, start + n, dtype=np.int64), **t)
    return Simulation(out["flux"], out["err"], truth, int(seed), out.get("clean"))


def simulate_stream(
    batch_size: int, *, seed: int = 0, start: int = 0, stop: int | None = None, **kwargs: Any
) -> Iterator[Simulation]:
    """Consecutive batches of the set ``seed``, from index ``start`` (to ``stop``, or forever).

    For training with fresh noise every epoch, give each epoch its own seed (e.g. base + epoch)
    or its own range of indices; a fixed validation set is just a fixed (seed, start, n).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    i = start
    while stop is None or i < stop:
        n = batch_size if stop is None else min(batch_size, stop - i)
        yield simulate(n, seed=seed, start=i, **kwargs)
        i += n


__all__ = [
    "FLAG_BAL",
    "FLAG_DLA",
    "FLAG_EW_NOT_REACHED",
    "FLAG_LINES_TRUNCATED",
    "INTERLOPER_KINDS",
    "KINEMATICS",
    "MAX_ABSORBERS",
    "NO_ABSORBER_LAMBDA",
    "PAPER_SNR",
    "Realism",
    "Simulation",
    "Truth",
    "simulate",
    "simulate_stream",
]
