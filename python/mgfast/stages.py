"""The Detector's stages, each a function one can call and test alone:

    prepare (or prepare_device) → infer → decode → measure → assemble

``prepare``: spectra as given (any grid, errors or ivar, masks) → ``Prepared``, the spectra
on the grid (continuum-normalised flux, ivar, pixel masks), their flags, masked-pixel counts,
median SNR, z_em (and the pixels beyond it masked) and the EW weights. ``infer``: the method
(network or matched filter) on them → raw ``Outputs``. ``decode``: outputs → ``Decoded`` (per
spectrum score and λ2796, and for a multi-absorber model its absorbers). ``measure``: the
absorbers' EWs on the spectra and their errors. ``assemble``: the rows (detected, λ2796 where it
points into the arms, flags, the row's EWs) → ``Detections``. ``prepare_device`` does the first
two on a GPU for spectra already there. ``Detector.detect`` is these five calls; its streaming
and file paths (``detect_stream``, ``detect_files``) go through ``detect``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core, grid
from . import ew as ew_mod
from .absorbers import Absorbers, calibrate, decode_absorbers, lift_by_summary
from .atomic import MGII_2796
from .flags import SpectrumFlag
from .preprocess import preprocess
from .quality import (
    check_normalised,
    check_z_em,
    mask_beyond_z_em,
    masked_by_reason,
    quality_flags,
    z_em_flags,
)
from .results import _EW_COLUMNS, Detections

if TYPE_CHECKING:
    from .detector import Detector

# infer's raw outputs: ("score", significance, λ2796) from the matched filter, ("pairs",
# probability, λ2796) from a one-absorber network, ("maps", maps, summary or None) from a
# multi-absorber one (summary: the (N, 2) probability and λ2796 of mgfast_dual's summary head).
Outputs = tuple[Any, ...]


@dataclass
class Prepared:
    """What ``prepare`` makes of spectra: on the grid, with what the later stages need. On a GPU
    (``prepare_device``) only flags, n_masked, snr and pixmask come back (flux is None)."""

    flags: np.ndarray  # (N,) uint32 SpectrumFlag
    n_masked: np.ndarray  # (N, arms) masked pixels per arm
    snr: np.ndarray  # (N,) median SNR per pixel over the usable pixels
    pixmask: np.ndarray  # (N, n_pix) uint8 PixelFlag
    flux: np.ndarray | None = None  # (N, n_pix) continuum-normalised, 1 where masked
    ivar: np.ndarray | None = None  # (N, n_pix), 0 where masked
    ivar_ew: np.ndarray | None = None  # the EW weights (ivar, or the scatter's estimate)
    z_em: np.ndarray | None = None  # (N,) float64, NaN where unknown; None: not given

    @property
    def on_gpu(self) -> bool:
        return self.flux is None

    def __len__(self) -> int:
        return len(self.flags)


@dataclass
class Decoded:
    """``decode``'s per-spectrum score (float32) and λ2796 (float64), the model's hash, and for a
    multi-absorber model its absorbers and their count per spectrum."""

    score: np.ndarray
    lam: np.ndarray
    sha: str | None
    absorbers: Absorbers | None = None
    n_abs: np.ndarray | None = None


def prepare(
    flux: Any, wave: Any, err: Any, *, ivar: Any = None, mask: Any = None,
    resolution: Any = None, normalised: bool = True, z_em: Any = None, threads: int = 0,
) -> Prepared:  # fmt: skip
    """Host spectra onto the grid (mgfast.preprocess), the pixels beyond z_em masked, their median
    SNR, and the EW weights (and those of a network that reads the noise: spectra without errors
    get them from their scatter)."""
    n = 1 if np.ndim(flux) == 1 else len(flux)
    zem = check_z_em(z_em, n)
    pre = preprocess(
        flux, wave, err, ivar=ivar, mask=mask, resolution=resolution,
        normalised=normalised, z_em=zem, allow_empty=True, threads=threads,
    )  # fmt: skip
    flags, n_masked = np.atleast_1d(pre.flags), np.atleast_2d(pre.n_masked)
    ivar2, pixmask = np.atleast_2d(pre.ivar), np.atleast_2d(pre.pixmask)
    flux2 = np.atleast_2d(pre.flux)
    if zem is not None:
        n_masked = mask_beyond_z_em(zem, flux2, ivar2, pixmask)
    snr = median_snr(ivar2, threads)
    ivar_ew = ew_mod.scatter_ivar(flux2, ivar2, pixmask)
    return Prepared(flags, n_masked, snr, pixmask, flux2, ivar2, ivar_ew, zem)


def prepare_device(
    det: Detector, flux: Any, wave: Any, err: Any, ivar: Any, mask: Any, resolution: Any,
    normalised: bool,
) -> tuple[Prepared, Outputs]:  # fmt: skip
    """prepare and infer on spectra in GPU memory: flags, n_masked, snr, pixmask and the outputs,
    all made on the device (GpuBackend.detect_device)."""
    backend = det._backend
    if backend is None or not hasattr(backend, "detect_device"):
        raise ValueError(
            "flux: a GPU array needs a GPU backend (Detector(backend='cuda')) and the "
            "network method; pass a host (NumPy) array otherwise"
        )
    if wave is not None or resolution is not None:
        raise ValueError(
            "flux: GPU arrays must already be on mgfast.grid (no wave, no resolution); "
            "spectra on other grids go through the host path (pass NumPy arrays)"
        )
    for name, a in (("err", err), ("ivar", ivar), ("mask", mask)):
        if a is not None and not on_gpu(a):
            raise ValueError(f"{name}: must be a GPU array like flux (or None)")
    if np.ndim(flux) == 1:  # one spectrum
        flux, err, ivar, mask = (None if a is None else a.reshape(1, -1)
                                 for a in (flux, err, ivar, mask))  # fmt: skip
    r = backend.detect_device(flux, err, ivar, mask, normalised=normalised)
    out = r["out"]
    kind = ("maps", out, r.get("summary")) if backend.map_output else (
        "pairs", out[:, 0].copy(), out[:, 1].copy())  # fmt: skip
    return Prepared(r["flags"], r["n_masked"], r["snr"], r["pixmask"]), kind


def infer(det: Detector, prep: Prepared) -> Outputs:
    """The Detector's method on prepared host spectra (its raw Outputs)."""
    assert prep.flux is not None and prep.ivar is not None
    if det.method == "matched-filter":
        from .matched_filter import match

        ivar = prep.ivar
        r = match(prep.flux, ivar if np.any(ivar) else None, threshold=det.threshold,
                  threads=det.threads)  # fmt: skip
        return "score", np.asarray(r.significance, np.float32), r.lambda2796
    backend, model = det._backend, det.model
    assert backend is not None and model is not None
    iv = prep.ivar_ew if model.reads_noise else None
    if not backend.map_output:
        return ("pairs", *backend.infer(prep.flux, iv))
    if backend.has_summary:  # mgfast_dual: the summary head's too (lift_by_summary)
        prob, lam32, maps = backend.infer_dual(prep.flux, iv)
        return "maps", maps, np.stack([prob, lam32], axis=1)
    return "maps", backend.infer_map(prep.flux, iv), None


def decode(det: Detector, out: Outputs, n: int) -> Decoded:
    """Raw outputs to per-spectrum scores and λ2796 (and a map model's absorbers)."""
    kind = out[0]
    if kind == "score":
        return Decoded(out[1], np.asarray(out[2], np.float64), None)
    model = det.model
    assert model is not None
    if kind == "pairs":  # the network's probability through the model's curve, if it has one
        prob = calibrate(out[1], model.calibration)
        return Decoded(prob, out[2].astype(np.float64), model.sha256)
    absorbers = decode_absorbers(
        *split_maps(out[1]), calibration=model.calibration, sigma_scale=model.sigma_scale
    )
    if out[2] is not None:  # mgfast_dual: the summary's probability lifts its absorber's
        absorbers = lift_by_summary(absorbers, out[2][:, 0], out[2][:, 1])
    # One story per spectrum: the row is its most probable absorber (probability, λ2796),
    # so that it is detected exactly when one absorber reaches the absorber threshold.
    assert det.absorber_threshold is not None
    n_abs, best = absorbers.per_spectrum(n, det.absorber_threshold)
    found = best >= 0
    score = np.zeros(n, np.float32)
    score[found] = absorbers.probability[best[found]]
    lam = np.full(n, np.nan)
    lam[found] = absorbers.lambda2796[best[found]]
    return Decoded(score, lam, model.sha256, absorbers, n_abs)


def measure(det: Detector, prep: Prepared, dec: Decoded) -> Decoded:
    """A multi-absorber model's absorbers measured: EWs on the spectra combined with the
    network's (Detector ew="combined", host spectra only), and their errors (the model's error
    model); nothing is found in a spectrum without a usable pixel."""
    absorbers, n_abs = dec.absorbers, dec.n_abs
    if absorbers is None:
        return dec
    if det.ew == "combined" and not prep.on_gpu:
        assert prep.flux is not None and prep.ivar_ew is not None
        absorbers = ew_mod.apply(absorbers, prep.flux, prep.ivar_ew, threads=det.threads)
    if det.model is not None and det.model.error_model:
        absorbers = det.model.error_model.apply(absorbers, prep.snr)
    empty = _empty(prep)
    absorbers = absorbers.select(~empty[absorbers.spectrum])
    assert n_abs is not None
    return Decoded(dec.score, dec.lam, dec.sha, absorbers, np.where(empty, 0, n_abs))


def _empty(prep: Prepared) -> np.ndarray:
    return np.asarray((prep.flags & int(SpectrumFlag.ALL_MASKED)) != 0)


def assemble(det: Detector, prep: Prepared, dec: Decoded, normalised: bool) -> Detections:
    """The rows: detected, λ2796 where it points into the arms, flags (quality, z_em, the
    normalisation check), the masked fraction and the row's EWs."""
    empty = _empty(prep)
    absorbers, n_abs = dec.absorbers, dec.n_abs
    score = np.where(empty, 0.0, dec.score).astype(np.float32)
    # a multi-absorber model's row is detected exactly when it has an absorber
    detected = score >= det.threshold if n_abs is None else n_abs > 0
    # λ2796 only where it points into the arms; a "no absorber" label is not a wavelength.
    lam = np.where(np.isfinite(grid.pixel_of(dec.lam)) & ~empty, dec.lam, np.nan)
    flags = prep.flags | quality_flags(prep.snr, prep.pixmask, lam)
    zem = prep.z_em
    if zem is not None:
        flags = flags | z_em_flags(lam, zem)
        if absorbers is not None:
            af = absorbers.flags | z_em_flags(absorbers.lambda2796, zem[absorbers.spectrum])
            absorbers = Absorbers(**{**absorbers.columns(), "flags": af})
    if normalised and not prep.on_gpu:
        assert prep.flux is not None
        flags = flags | check_normalised(prep.flux, prep.pixmask)
    masked = prep.n_masked.sum(axis=1) / grid.N_PIX
    if absorbers is not None:  # the row's EWs: those of its most probable absorber
        ews = best_absorber_ews(absorbers, detected)
    elif prep.on_gpu:
        ews = {}
    else:
        assert prep.flux is not None and prep.ivar_ew is not None
        ews = summary_ews(prep.flux, prep.ivar_ew, lam, detected, det.threads)
    return Detections(
        probability=score, wavelength=lam, redshift=lam / MGII_2796.wavelength - 1.0,
        detected=detected, flags=flags, masked_fraction=masked.astype(np.float32),
        masked_by=masked_by_reason(prep.pixmask),
        snr=prep.snr, z_em=zem, threshold=det.threshold, method=det.method,
        model_sha256=dec.sha, model=det.model_name, absorbers=absorbers, n_absorbers=n_abs,
        absorber_threshold=det.absorber_threshold if absorbers is not None else None, **ews,
    )  # fmt: skip


def split_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mgfast_multi's (N, cells, 7) output to logits (N, cells) and maps (N, cells, 6)."""
    return maps[:, :, 0], maps[:, :, 1:]


def on_gpu(a: Any) -> bool:
    """Whether ``a`` lives in GPU memory (CuPy, PyTorch CUDA tensors, pycuda, Numba, ...)."""
    return hasattr(a, "__cuda_array_interface__")


def median_snr(ivar: np.ndarray, threads: int = 0) -> np.ndarray:
    """Median sqrt(ivar) over the pixels with ivar > 0 per row, NaN where there are none: numpy's
    nanmedian of the same, in the core (a selection per row, not a sort; the GPU engine computes
    it on the device, cuda::enqueue_median_snr)."""
    return _core.median_snr(np.ascontiguousarray(ivar, np.float32), int(threads))


def summary_ews(
    flux: np.ndarray, ivar: np.ndarray, lam: np.ndarray, detected: np.ndarray, threads: int
) -> dict[str, np.ndarray]:
    """The per-spectrum EW columns: the doublet measured at λ2796 in detected spectra (without a
    network's EW to size the windows: mgfast.ew.measure's two passes)."""
    n = len(lam)
    cols = {k: np.full(n, np.nan, np.float32) for k in _EW_COLUMNS}
    rows = np.flatnonzero(detected & np.isfinite(lam))
    if rows.size == 0:
        return cols
    z = lam[rows] / MGII_2796.wavelength - 1.0
    ew, sig = ew_mod.measure(flux, ivar, rows, z, np.full(rows.size, np.nan), threads=threads)
    for j, line in enumerate(("ew2796", "ew2803")):
        cols[line][rows] = ew[:, j]
        cols[line + "_err"][rows] = sig[:, j]
    return cols


def best_absorber_ews(absorbers: Absorbers, detected: np.ndarray) -> dict[str, np.ndarray]:
    """The per-spectrum EW columns of a multi-absorber model: its most probable absorber's, in
    detected spectra (NaN elsewhere)."""
    n = len(detected)
    _, best = absorbers.per_spectrum(n, 1.0)
    rows = np.flatnonzero(detected & (best >= 0))
    cols = {k: np.full(n, np.nan, np.float32) for k in _EW_COLUMNS}
    for k in _EW_COLUMNS:
        cols[k][rows] = getattr(absorbers, k)[best[rows]]
    return cols
