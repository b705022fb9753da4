"""The Detector's stages (mgfast.stages), each called alone: their outputs, and that the five in a
row are Detector.detect to the bit; the one atomic file write (mgfast._fileutil)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mgfast import DetectionFlag, SpectrumFlag, grid, stages
from mgfast._fileutil import atomic_write
from mgfast.absorbers import calibrate
from mgfast.detector import Detector
from mgfast.model import write_random_model
from mgfast.testing import mgii_doublet


def spectra(n: int = 6, snr: float = 20.0, seed: int = 1):
    """n grid spectra, the first half with a strong doublet; one all-NaN spectrum last."""
    rng = np.random.default_rng(seed)
    w = grid.wavelength()
    flux = np.ones((n, grid.N_PIX))
    lam = rng.uniform(5250.0, 5600.0, n // 2)
    for i, l2796 in enumerate(lam):
        flux[i] = mgii_doublet(w, l2796 / 2796.3543 - 1, 1.2, fwhm_kms=60.0)
    flux += rng.standard_normal(flux.shape) / snr
    flux[-1] = np.nan
    return flux.astype(np.float32), np.full(flux.shape, 1 / snr, np.float32), lam


def equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


@pytest.mark.parametrize("method", ["network", "matched-filter"])
def test_the_five_stages_in_a_row_are_detect(method):
    det = Detector(method=method)
    flux, err, _ = spectra()
    z_em = np.array([2.0, 1.5, np.nan, 3.0, 1.0, 2.0])
    prep = stages.prepare(flux, None, err, z_em=z_em)
    out = stages.infer(det, prep)
    dec = stages.measure(det, prep, stages.decode(det, out, len(prep)))
    staged = stages.assemble(det, prep, dec, True)
    whole = det.detect(flux, err=err, z_em=z_em)
    for k, v in whole.__dict__.items():
        assert equal(v, staged.__dict__[k]), k


def test_prepare_puts_spectra_on_the_grid_with_their_weights():
    flux, err, _ = spectra()
    w = grid.wavelength()
    prep = stages.prepare(flux, w, err, normalised=False, z_em=[5.0] * 6)
    n = len(flux)
    assert len(prep) == n and not prep.on_gpu
    assert prep.flux.shape == prep.ivar.shape == prep.pixmask.shape == (n, grid.N_PIX)
    assert prep.n_masked.shape == (n, len(grid.ARMS))
    assert prep.flags[-1] & int(SpectrumFlag.ALL_MASKED)
    assert np.isnan(prep.snr[-1]) and np.all(np.abs(prep.snr[:-1] - 20.0) < 3.0)
    # spectra with errors: the EW weights are their ivar (the all-NaN one has none to keep)
    np.testing.assert_array_equal(prep.ivar_ew[:-1], prep.ivar[:-1])
    # z_em beyond every arm: nothing is masked for it
    np.testing.assert_array_equal(prep.z_em, np.full(n, 5.0))


def test_prepare_masks_beyond_z_em():
    flux, err, _ = spectra()
    prep = stages.prepare(flux, None, err, z_em=np.full(len(flux), 0.9))
    beyond = grid.wavelength() > 2803.5315 * 1.9 * 1.0168  # 5,000 km/s redward
    assert np.all(prep.pixmask[:, beyond] != 0)
    assert np.all(prep.ivar[:, beyond] == 0)


def test_decode_of_one_absorber_outputs_and_of_the_matched_filter():
    det = Detector()
    prob = np.array([0.1, 0.99], np.float32)
    lam = np.array([5000.0, 5400.0], np.float32)
    dec = stages.decode(det, ("pairs", prob, lam), 2)
    # the network's probability through the model's calibration curve (monotone: same ranking)
    assert det.model.calibration is not None
    np.testing.assert_array_equal(dec.score, calibrate(prob, det.model.calibration))
    assert dec.score[1] > dec.score[0] and dec.score.dtype == np.float32
    assert dec.lam.dtype == np.float64 and dec.absorbers is None
    assert dec.sha == det.model.sha256
    mf = stages.decode(Detector(method="matched-filter"), ("score", prob, lam), 2)
    assert mf.sha is None and mf.lam.dtype == np.float64


def test_assemble_keeps_lambda_only_inside_the_arms_and_flags_the_forest():
    det = Detector()
    flux, err, _ = spectra()
    prep = stages.prepare(flux, None, err, z_em=np.full(len(flux), 3.5))
    n = len(prep)
    lam = np.full(n, 5400.0)
    lam[1] = 4700.0  # in the gap between the blue and green arms
    dec = stages.Decoded(np.full(n, 0.99, np.float32), lam, det.model.sha256)
    res = stages.assemble(det, prep, dec, True)
    assert np.isnan(res.wavelength[1]) and not np.isnan(res.wavelength[0])
    assert not res.detected[-1] and res.probability[-1] == 0  # no usable pixel: nothing found
    # λ2796 5400 Å with z_em 3.5: below Lyα at 5470 Å, so in the forest
    assert res.flags[0] & int(DetectionFlag.IN_FOREST)


def test_measure_leaves_one_absorber_models_alone(tmp_path):
    det = Detector(write_random_model(tmp_path / "m", "mgfast_fcn"))
    flux, err, _ = spectra()
    prep = stages.prepare(flux, None, err)
    dec = stages.decode(det, stages.infer(det, prep), len(prep))
    assert stages.measure(det, prep, dec) is dec


def test_atomic_write_is_whole_or_absent(tmp_path: Path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def fails(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fails)
    assert path.read_text() == "old"  # the old file stays, whole
    assert not list(tmp_path.glob(".*.tmp"))  # and no temporary file is left
    atomic_write(path, lambda tmp: tmp.write_text("new"), durable=True)
    assert path.read_text() == "new"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_model_without_a_curve_gives_the_networks_probability(tmp_path):
    det = Detector(write_random_model(tmp_path / "m", "mgfast_fcn"))
    assert det.model.calibration is None
    prob = np.array([0.1, 0.99], np.float32)
    dec = stages.decode(det, ("pairs", prob, np.zeros(2, np.float32)), 2)
    np.testing.assert_array_equal(dec.score, prob)
