"""The Detector contract: one row per spectrum, in order, through preprocessing and a backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mgfast
from mgfast import SpectrumFlag, grid
from mgfast.detector import Detector
from mgfast.testing import mgii_doublet


def grid_spectra(n_with: int, n_without: int, snr: float = 20.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = grid.wavelength()
    flux = np.ones((n_with + n_without, grid.N_PIX))
    lam = rng.uniform(5200.0, 5650.0, n_with)
    for i, l2796 in enumerate(lam):
        flux[i] = mgii_doublet(w, l2796 / 2796.3543 - 1, 1.0, fwhm_kms=60.0)
    flux += rng.standard_normal(flux.shape) / snr
    return flux.astype(np.float32), np.full(flux.shape, 1 / snr, np.float32), lam


def test_matched_filter_detector_finds_and_locates():
    flux, err, lam = grid_spectra(30, 30)
    res = Detector(method="matched-filter").detect(flux, err=err)
    assert len(res) == 60
    assert res.detected[:30].all()
    assert res.detected[30:].mean() <= 0.1
    assert np.max(np.abs(res.wavelength[:30] - lam)) < 1.0
    np.testing.assert_allclose(res.redshift[:30], lam / 2796.3543 - 1, atol=3e-4)


def test_one_spectrum_in_one_row_out_and_bad_spectra_do_not_stop_the_batch():
    flux, err, _ = grid_spectra(2, 1)
    flux[1] = np.nan  # one spectrum with nothing usable
    det = Detector(method="matched-filter")
    res = det.detect(flux, err=err)
    assert len(res) == 3 and res.flags[1] & SpectrumFlag.ALL_MASKED
    assert res.probability[1] == 0 and not res.detected[1] and np.isnan(res.wavelength[1])
    assert res.detected[0]
    one = det.detect(flux[0], err=err[0])
    assert one.probability.shape == () and bool(one.detected)


def test_off_grid_input_is_preprocessed():
    q = mgfast.testing.synthetic_quasar(
        4, z_abs=0.95, ew2796_rest=1.0, snr=20, absorber_fwhm_kms=60
    )
    res = Detector(method="matched-filter").detect(q.flux, wave=q.wave, err=q.err, normalised=False)
    assert res.detected.all()
    assert np.all(np.abs(res.wavelength - 2796.3543 * 1.95) < 1.0)


@pytest.mark.parametrize("suffix", [".csv", ".fits", ".h5", ".parquet"])
def test_catalogue_files(tmp_path, suffix):
    """Detections.write goes through the one catalogue writer: Catalog.read gives back the same
    rows and provenance (and read_catalog, which mgfast detect's catalogues use)."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    flux, err, _ = grid_spectra(3, 3)
    res = Detector(method="matched-filter").detect(flux, err=err)
    res.write(tmp_path / f"cat{suffix}")
    back = mgfast.Catalog.read(tmp_path / f"cat{suffix}")
    for k, v in res.columns().items():
        np.testing.assert_array_equal(back.columns[k], v, err_msg=k)
        assert back.columns[k].dtype == v.dtype, k
    np.testing.assert_array_equal(back.columns["index"], np.arange(len(res)))
    assert back.meta["method"] == "matched-filter" and back.meta["threshold"] == res.threshold
    assert back.meta["mgfast_version"] == mgfast.__version__ and back.errors == ()
    with pytest.raises(ValueError, match="format"):
        res.write(tmp_path / "cat.txt")


def test_fits_catalogue_has_its_provenance_in_the_primary_header(tmp_path):
    """The primary HDU says what made the catalogue: mgfast version, model name and SHA-256,
    thresholds, date, inputs; header text is ASCII only."""
    import fitsio

    sim = mgfast.simulate(8, seed=3, with_absorber_fraction=0.5)
    det = Detector()
    det.detect(sim.flux, err=sim.err).write(tmp_path / "c.fits")
    h = fitsio.read_header(str(tmp_path / "c.fits"), 0)
    assert h["MGFAST"] == mgfast.__version__ and h["METHOD"] == "network"
    assert h["MODEL"] == "default" and h["MODELSHA"] == det.model.sha256
    assert h["THRESH"] == pytest.approx(det.threshold, rel=1e-12)  # 15 digits in the card
    assert h["NFILES"] == 0 and h["NSPEC"] == 8
    assert "ABSTHRSH" not in h and len(h["DATE"]) >= 19
    raw = (tmp_path / "c.fits").read_bytes()
    headers = raw[:2880]  # the primary header's first block
    assert all(b < 128 for b in headers)
    back = mgfast.Catalog.read(tmp_path / "c.fits")
    assert back.meta["model"] == "default" and back.meta["model_sha256"] == det.model.sha256


def test_network_detector_runs_a_model_directory(tmp_path):
    from mgfast.model import write_random_model

    if not mgfast._core.built_with_onednn:
        pytest.skip("built without oneDNN")
    path = write_random_model(tmp_path / "m", "bycycle2023", seed=1)
    det = Detector(path, threads=1, batch_size=8)
    flux, err, _ = grid_spectra(5, 5)
    res = det.detect(flux, err=err)
    prob, _ = det._backend.infer(mgfast.preprocess(flux, None, err).flux)
    np.testing.assert_array_equal(res.probability, prob)
    assert res.model_sha256 == det.model.sha256


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        Detector(method="cnn")
    with pytest.raises(ValueError, match="backend"):
        Detector(backend="tpu", method="matched-filter")
    with pytest.raises(ValueError, match="backend"):
        Detector(backend="cuda:one", method="matched-filter")
    with pytest.raises(FileNotFoundError, match=r"model\.json|model\.onnx|does not exist|missing"):
        Detector("/no/such/model")


@pytest.mark.model
def test_the_shipped_model_loads_and_detects():
    det = Detector()
    assert det.model.trained and det.model.architecture == "mgfast_fcn"
    flux, err, lam = grid_spectra(20, 20, snr=20)
    res = det.detect(flux, err=err)
    # strong doublets (rest EW 1 Å) at SNR 20: all found, located to a pixel, few false alarms
    assert res.detected[:20].all()
    assert np.max(np.abs(res.wavelength[:20] - lam)) < 0.5
    assert res.detected[20:].sum() <= 1


def test_median_snr_is_numpys_nanmedian_of_sqrt_ivar():
    from mgfast.stages import median_snr as _median_snr

    rng = np.random.default_rng(4)
    ivar = rng.uniform(0.1, 400.0, (40, grid.N_PIX)).astype(np.float32)
    ivar[rng.random(ivar.shape) < 0.3] = 0.0
    ivar[1] = 0.0  # no errors: NaN
    ivar[2, :] = 0.0
    ivar[2, 17] = 25.0  # one usable pixel
    ivar[3, :] = 0.0
    ivar[3, [5, 9]] = [4.0, 16.0]  # two: their mean, 3
    ivar[4, ::2] = np.nan  # NaN is not usable
    ivar[5, :11] = -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian(np.where(ivar > 0, np.sqrt(ivar), np.nan), axis=1).astype(np.float32)
    for threads in (1, 2):
        got = _median_snr(ivar, threads)
        np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1]) and got[2] == 5.0 and got[3] == 3.0
    assert _median_snr(np.zeros((0, 5), np.float32)).shape == (0,)


def test_detection_flags_low_snr_near_edge_near_masked():
    from mgfast.flags import EDGE_PIXELS, DetectionFlag
    from mgfast.quality import quality_flags as _quality
    from mgfast.stages import median_snr as _median_snr

    w = grid.wavelength()
    flux = np.ones((5, grid.N_PIX), np.float32)
    err = np.full(flux.shape, 0.05, np.float32)
    err[1] = 0.5  # SNR 2 per pixel
    green = grid.ARMS[1]
    lam = np.full(5, w[green.start + 2000])  # mid-arm, both lines well inside
    lam[2] = w[green.start + EDGE_PIXELS - 3]  # λ2796 right at the green arm's blue end
    lam[3] = np.nan  # nothing found: no position flags
    at = green.start + 2000
    flux[4, at + 3] = np.nan  # a bad pixel 3 pixels from λ2796
    pre = mgfast.preprocess(flux, err=err)
    snr = _median_snr(pre.ivar)
    flags = _quality(snr, pre.pixmask, lam)
    np.testing.assert_allclose(snr[[0, 2, 3, 4]], 20.0, rtol=1e-5)
    assert snr[1] == pytest.approx(2.0)
    assert [bool(f & DetectionFlag.LOW_SNR) for f in flags] == [False, True, False, False, False]
    assert [bool(f & DetectionFlag.NEAR_EDGE) for f in flags] == [False, False, True, False, False]
    assert [bool(f & DetectionFlag.NEAR_MASKED) for f in flags] == [False] * 4 + [True]
    no_err = mgfast.preprocess(flux[:1])
    snr = _median_snr(no_err.ivar)
    flags = _quality(snr, no_err.pixmask, lam[:1])
    assert np.isnan(snr[0]) and not flags[0] & DetectionFlag.LOW_SNR
    # λ2803 on the red arm's last pixel: NEAR_EDGE though λ2796 is well inside
    red = grid.ARMS[2]
    lam_red = np.array([w[red.stop - 1] * 2796.3543 / 2803.5315 - 0.5])
    flags = _quality(np.array([20.0], np.float32), mgfast.preprocess(flux[:1]).pixmask, lam_red)
    assert flags[0] & DetectionFlag.NEAR_EDGE


def test_detect_stream_gives_one_result_per_batch_in_order_with_ids():
    det = Detector(method="matched-filter")
    sim = mgfast.simulate(30, seed=21, with_absorber_fraction=0.5)
    whole = det.detect(sim.flux)
    batches = [
        sim.flux[:10],  # an array: running indices
        {"flux": sim.flux[10:20], "ids": [f"q{i}" for i in range(10, 20)]},
        mgfast.simulate(10, seed=21, start=20, with_absorber_fraction=0.5),  # a Simulation
    ]
    out = list(det.detect_stream(iter(batches)))
    assert [r.error for r in out] == [None, None, None]
    assert out[0].ids.tolist() == list(range(10))
    assert out[1].ids.tolist() == [f"q{i}" for i in range(10, 20)]
    assert out[2].ids.tolist() == list(range(20, 30))
    prob = np.concatenate([r.detections.probability for r in out])
    np.testing.assert_array_equal(prob[:20], whole.probability[:20])
    assert len(prob) == 30


def test_detect_stream_reports_a_failing_batch_and_goes_on():
    det = Detector(method="matched-filter")
    good = mgfast.simulate(4, seed=22).flux
    batches = [good, {"flux": np.ones((3, 17), np.float32), "ids": [7, 8, 9]}, good[:1][0]]
    out = list(det.detect_stream(batches))
    assert out[0].error is None and len(out[0].detections) == 4
    assert out[1].detections is None and out[1].ids.tolist() == [7, 8, 9]
    assert "ValueError" in out[1].error
    assert out[2].error is None and out[2].ids.tolist() == [7] and len(out[2].detections) == 1


def test_detect_stream_reads_a_bounded_number_of_batches_ahead():
    det = Detector(method="matched-filter")
    flux = mgfast.simulate(2, seed=23).flux
    made = []

    def source():
        for i in range(50):
            made.append(i)
            yield flux

    stream = det.detect_stream(source(), prefetch=2)
    for k, _ in enumerate(stream):
        assert len(made) <= k + 1 + 2 + 1  # consumed, queued (prefetch) and one in hand
        if k == 5:
            break
    stream.close()


def test_detect_stream_passes_on_a_failing_source():
    det = Detector(method="matched-filter")

    def source():
        yield mgfast.simulate(2, seed=24).flux
        raise OSError("disk gone")

    stream = det.detect_stream(source())
    assert next(stream).error is None
    with pytest.raises(OSError, match="disk gone"):
        next(stream)


def test_shipped_models_are_found_by_name():
    from mgfast.detector import default_model_path, resolve_model, shipped_models

    assert "default" in shipped_models()
    assert resolve_model("default") == default_model_path()
    assert Detector(model="default").model.sha256 == Detector().model.sha256
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Detector(model="no-such-model")


def test_unnormalised_flux_given_as_normalised_is_flagged_and_warned_about():
    sim = mgfast.simulate(12, seed=3, snr=20, with_absorber_fraction=0.5)
    det = mgfast.Detector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # normalised spectra: no warning
        ok = det.detect(sim.flux, err=sim.err)
    assert not np.any(ok.flags & mgfast.DetectionFlag.NOT_NORMALISED)
    flux, err = sim.flux.copy(), sim.err.copy()
    flux[:4] *= 3e-17  # four in physical units
    err[:4] *= 3e-17
    with pytest.warns(mgfast.NormalisationWarning, match="4 of 12 spectra.*normalised=False"):
        res = det.detect(flux, err=err)
    flagged = (res.flags & mgfast.DetectionFlag.NOT_NORMALISED) != 0
    np.testing.assert_array_equal(flagged, np.arange(12) < 4)
    # told the truth, the detector fits their continuum and finds what the others find
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.detect(flux[:4] * 1e17, err=err[:4] * 1e17, normalised=False)


def test_z_em_limits_the_search_and_flags_forest_and_associated_absorbers():
    """With z_em nothing is searched redward of where MgII can be (pixels BEYOND_ZEM), and the
    rows get IN_FOREST / ASSOCIATED from their λ2796; NaN z_em changes nothing."""
    from mgfast.flags import DetectionFlag, PixelFlag

    sim = mgfast.simulate(8, seed=1, snr=20, with_absorber_fraction=1.0)
    z_abs = sim.truth.lambda2796 / 2796.3543 - 1
    det = Detector()
    plain = det.detect(sim.flux, err=sim.err)
    assert plain.detected.all() and np.isnan(plain.columns()["z_em"]).all()
    unknown = det.detect(sim.flux, err=sim.err, z_em=np.full(8, np.nan))
    np.testing.assert_array_equal(unknown.probability, plain.probability)
    np.testing.assert_array_equal(unknown.flags, plain.flags)
    # the quasar just behind each absorber: found, and associated (within 5,000 km/s)
    near = det.detect(sim.flux, err=sim.err, z_em=z_abs + 0.01)
    assert near.detected.all()
    assert np.all(near.flags & DetectionFlag.ASSOCIATED)
    np.testing.assert_array_equal(near.columns()["z_em"], z_abs + 0.01)
    # far behind: not associated; in the forest when λ2796 < 1215.67 (1 + z_em)
    far = det.detect(sim.flux, err=sim.err, z_em=z_abs + 2.0)
    assert not np.any(far.flags & DetectionFlag.ASSOCIATED)
    in_forest = sim.truth.lambda2796 < 1215.67 * (1 + z_abs + 2.0)
    np.testing.assert_array_equal((far.flags & DetectionFlag.IN_FOREST) != 0, in_forest)
    # in front of the absorbers: they lie where no MgII can be, and are not searched
    front = det.detect(sim.flux, err=sim.err, z_em=z_abs - 0.05)
    assert not front.detected.any()
    assert np.all(front.masked_fraction > plain.masked_fraction)
    pre = mgfast.preprocess(sim.flux, None, sim.err)
    assert PixelFlag.BEYOND_ZEM not in PixelFlag(int(np.bitwise_or.reduce(pre.pixmask.ravel())))


@pytest.mark.parametrize(
    ("z_em", "message"),
    [(-0.5, ">= 0"), (np.inf, ">= 0"), ([1.0, 2.0], "2 values for 6"), ("high", "number")],
)
def test_bad_z_em_is_refused(z_em, message):
    flux, err, _ = grid_spectra(3, 3)
    with pytest.raises(ValueError, match=message):
        Detector(method="matched-filter").detect(flux, err=err, z_em=z_em)


def test_multi_absorber_z_em_flags_each_absorber():
    from mgfast.flags import DetectionFlag

    sim = mgfast.simulate(10, seed=4, snr=20, with_absorber_fraction=1.0, max_absorbers=3)
    lam = sim.truth.abs_lambda2796
    z_em = np.nanmax(lam, axis=1) / 2796.3543 - 1 + 0.005  # just behind the reddest absorber
    res = Detector(model="multi").detect(sim.flux, err=sim.err, z_em=z_em)
    a = res.absorbers
    assert a is not None and len(a) > 0
    z_abs = a.lambda2796 / 2796.3543 - 1
    dv = 299792.458 * np.abs(np.log((1 + z_abs) / (1 + z_em[a.spectrum])))
    np.testing.assert_array_equal((a.flags & DetectionFlag.ASSOCIATED) != 0, dv <= 5000.0)
    cut = (
        2803.5315
        * (1 + z_em[a.spectrum])
        * np.sqrt((1 + 5000 / 299792.458) / (1 - 5000 / 299792.458))
    )
    assert np.all(a.lambda2796 < cut)


# ---- the flux unit does not matter -------------------------------------------------------

_UNIT_SIM = mgfast.simulate(
    6, seed=77, snr=[5, 20], with_absorber_fraction=0.5, ew_range=(0.3, 2.0),
    realism=mgfast.Realism(unnormalised=True),
)  # fmt: skip


@pytest.fixture(scope="module")
def unit_reference():
    det = Detector()
    sim = _UNIT_SIM
    return det, det.detect(sim.flux, grid.wavelength(), sim.err, normalised=False).probability


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    exponent=st.floats(-30.0, 30.0),
    float64=st.booleans(),
    off_grid=st.booleans(),
)
def test_probabilities_do_not_depend_on_the_flux_unit(unit_reference, exponent, float64, off_grid):
    # W m^-2 nm^-1 (flux and error ~1e-19) used to lose every pixel: 1/σ² overflowed float32,
    # the spectrum came back ALL_MASKED with probability 0 and no warning. Flux and error scaled
    # together by anything from 1e-30 to 1e30 now give the same probabilities, in float32 or
    # float64, on the grid or resampled from other wavelengths.
    det, p_ref = unit_reference
    sim = _UNIT_SIM
    dtype = np.float64 if float64 else np.float32
    scale = dtype(10.0**exponent)
    flux, err = sim.flux.astype(dtype) * scale, sim.err.astype(dtype) * scale
    wave = grid.wavelength()
    if off_grid:  # the same pixels, given as a spectrum off the grid (resampled, LSF step)
        res = det.detect(flux, wave, err, normalised=False, resolution=20000.0 * (1 + 1e-6))
    else:
        res = det.detect(flux, wave, err, normalised=False)
    assert not np.any(res.flags & (SpectrumFlag.ALL_MASKED | SpectrumFlag.CONTINUUM_FAILED))
    np.testing.assert_allclose(res.probability, p_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "scale, errors",
    [(1e-40, "err"), (1e-40, "ivar"), (1e-300, "err"), (1e40, "err"), (1e40, "ivar"),
     (1e300, "err")],
)  # fmt: skip
def test_float64_flux_beyond_float32_range(unit_reference, scale, errors):
    # float64 input that would underflow (or overflow) in float32 is scaled before the cast;
    # errors as σ or as inverse variances (1/σ² of 1e±300 is beyond float64 itself)
    det, p_ref = unit_reference
    sim = _UNIT_SIM
    flux, err = sim.flux.astype(np.float64) * scale, sim.err.astype(np.float64) * scale
    kw = dict(err=err) if errors == "err" else dict(ivar=1.0 / err**2)
    res = det.detect(flux, grid.wavelength(), normalised=False, **kw)
    np.testing.assert_allclose(res.probability, p_ref, atol=1e-5, rtol=0)


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    for k, v in a.__dict__.items():
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            assert np.array_equal(v, w, equal_nan=v.dtype.kind == "f"), k
        elif k == "absorbers" and v is not None:
            for c, x in v.columns().items():
                assert np.array_equal(x, w.columns()[c], equal_nan=x.dtype.kind == "f"), c
        else:
            assert v == w, k


@pytest.mark.parametrize("model", ["default", "multi"])
def test_detect_in_chunks_equals_one_call(model):
    """Detector(chunk_size=k) bounds detect()'s working memory; the results are those of one
    call, per-spectrum arguments (z_em, resolution, a wavelength array per spectrum) sliced."""
    sim = mgfast.simulate(23, seed=3, with_absorber_fraction=0.7, max_absorbers=3,
                          realism=mgfast.Realism(unnormalised=True))  # fmt: skip
    w = np.broadcast_to(grid.wavelength(), sim.flux.shape)
    kw = dict(wave=w, err=sim.err, normalised=False, z_em=sim.truth.z_em,
              resolution=np.full(23, 20000.0))  # fmt: skip
    whole = Detector(model=model).detect(sim.flux, **kw)
    chunked = Detector(model=model, chunk_size=5).detect(sim.flux, **kw)
    _assert_same(whole, chunked)
    assert len(chunked) == 23
    with pytest.raises(ValueError, match="chunk_size"):
        Detector(model=model, chunk_size=0)


def test_masked_pixels_are_reported_by_reason(tmp_path):
    """masked_by: a column per reason (the lowest PixelFlag bit of each masked pixel), summing to
    masked_fraction; in the catalogue as masked_<reason>."""
    from mgfast.flags import MASK_REASONS, PixelFlag

    sim = mgfast.simulate(4, seed=3, snr=[10])
    flux, err = sim.flux.copy(), sim.err.copy()
    flux[0, 100:150] = np.nan  # bad input
    err[1, grid.ARMS[1].start : grid.ARMS[1].stop] = 0.0  # the green arm missing
    det = mgfast.Detector()
    d = det.detect(flux, err=err, z_em=[np.nan, np.nan, 0.6, np.nan])  # 2: beyond z_em
    assert d.masked_by is not None and d.masked_by.shape == (4, len(MASK_REASONS))
    np.testing.assert_allclose(d.masked_by.sum(axis=1), d.masked_fraction, atol=1e-6)
    by = {r: d.masked_by[:, j] for j, r in enumerate(MASK_REASONS)}
    assert by[PixelFlag.BAD_INPUT][0] == pytest.approx(50 / grid.N_PIX)
    assert by[PixelFlag.BAD_INPUT][1] == pytest.approx(
        grid.ARMS[1].stop / grid.N_PIX - grid.ARMS[1].start / grid.N_PIX
    )
    assert by[PixelFlag.BEYOND_ZEM][2] > 0.2 and by[PixelFlag.BEYOND_ZEM][[0, 1, 3]].sum() == 0
    assert d.masked_fraction[3] == 0 and not d.masked_by[3].any()
    cols = d.columns()
    for j, r in enumerate(MASK_REASONS):
        np.testing.assert_array_equal(cols[f"masked_{r.name.lower()}"], d.masked_by[:, j])
    one = det.detect(flux[0], err=err[0])  # one spectrum: scalars, like every column
    assert np.ndim(one.columns()["masked_bad_input"]) == 0
    assert one.columns()["masked_bad_input"] == by[PixelFlag.BAD_INPUT][0]
    path = tmp_path / "c.fits"
    d.write(path)
    back = mgfast.Catalog.read(path)
    np.testing.assert_array_equal(
        np.asarray(back.columns["masked_beyond_zem"]),
        d.masked_by[:, list(MASK_REASONS).index(PixelFlag.BEYOND_ZEM)],
    )
