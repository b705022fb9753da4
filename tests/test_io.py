"""The readers (mgfast.io) against files another library (astropy.io.fits) wrote in each
documented layout: wavelengths in vacuum Å whatever the file's unit and medium, masks, ids and
coordinates, and the absorber found where it was put."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fitsio")
pytest.importorskip("astropy")

from astropy.io import fits

import mgfast
from mgfast import io
from mgfast.detector import Detector
from mgfast.testing.spectrum_files import (
    LAMBDA2796,
    quasar,
    write_4most,
    write_desi,
    write_eso_sdp,
    write_sdss,
)


@pytest.fixture(scope="module")
def mf():
    return Detector(method="matched-filter", threads=1)


def located(det: Detector, s: io.Spectrum) -> float:
    r = det.detect(s.flux, wave=s.wave, err=s.err, ivar=s.ivar, mask=s.mask,
                   resolution=s.resolution, normalised=s.normalised)  # fmt: skip
    assert bool(r.detected)
    return float(r.wavelength)


def test_air_vacuum_conversion_against_tabulated_lines():
    # NIST: MgII 2796.3543 Å (vacuum) is 2795.528 Å in air; Hα 6562.80 Å (air) is 6564.61 (vacuum)
    np.testing.assert_allclose(io.vacuum_to_air(np.array([2796.3543])), [2795.528], atol=3e-3)
    np.testing.assert_allclose(io.air_to_vacuum(np.array([6562.80])), [6564.61], atol=1e-2)
    w = np.linspace(3000.0, 10000.0, 101)
    np.testing.assert_allclose(io.air_to_vacuum(io.vacuum_to_air(w)), w, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("unit", "scale", "air"),
                         [("Angstrom", 1.0, False), ("nm", 0.1, False), ("Angstrom", 1.0, True),
                          ("nm", 0.1, True)])  # fmt: skip
def test_eso_sdp_units_air_and_quality(tmp_path, mf, unit, scale, air):
    q = quasar()
    w_file = (io.vacuum_to_air(q.wave) if air else q.wave) * scale
    qual = np.zeros(q.wave.size, np.int32)
    qual[100:120] = 4
    path = write_eso_sdp(tmp_path / "sdp.fits", w_file, q.flux[0], q.err[0], qual=qual,
                         unit=unit, air=air, header={"SPEC_RES": 20000.0})  # fmt: skip
    assert io.detect_format(path) == "eso-sdp"
    (s,) = io.read(path)
    np.testing.assert_allclose(s.wave, q.wave, rtol=1e-11)
    np.testing.assert_array_equal(s.flux, q.flux[0])
    np.testing.assert_array_equal(s.err, q.err[0])
    np.testing.assert_array_equal(np.flatnonzero(s.mask), np.arange(100, 120))
    assert (s.id, s.ra, s.dec, s.resolution) == ("QSO J0000-0000", 150.25, -2.5, 20000.0)
    assert abs(located(mf, s) - LAMBDA2796) < 1.0


def test_eso_sdp_air_read_as_vacuum_would_miss_by_the_refraction(tmp_path):
    q = quasar()
    path = write_eso_sdp(tmp_path / "a.fits", io.vacuum_to_air(q.wave), q.flux[0], q.err[0],
                         air=True)  # fmt: skip
    (s,) = io.read(path)
    with fits.open(path, mode="update") as h:
        h[1].header["TUCD1"] = "em.wl"
    (v,) = io.read(path)
    shift = s.wave - v.wave  # what the conversion adds: about 1.5 Å at 5450 Å
    assert 1.4 < np.interp(LAMBDA2796, s.wave, shift) < 1.6


def test_eso_sdp_continuum_normalises(tmp_path):
    q = quasar()
    cont = q.continuum.copy()
    cont[:50] = 0.0  # no continuum there: masked
    path = write_eso_sdp(tmp_path / "c.fits", q.wave, q.flux[0], q.err[0], continuum=cont)
    (s,) = io.read(path)
    assert s.normalised
    np.testing.assert_allclose(s.flux[50:], q.flux[0][50:] / cont[50:], rtol=1e-6)
    assert np.all(s.mask[:50]) and not np.any(s.mask[50:])


def test_4most_joined_with_nan_gaps_and_per_arm(tmp_path, mf):
    q = quasar()
    w, f, e = q.wave.copy(), q.flux[0].copy(), q.err[0].copy()
    gap = mgfast.grid.arm_of(w) < 0
    f[gap] = np.nan  # joined file: the gaps as NaN flux
    wn = w / 10.0
    wn[gap & (w > 5800)] = np.nan  # and part of one gap as NaN wavelengths
    path = write_4most(tmp_path / "j.fits", wn, f, e, unit="nm",
                       header={"RA": 10.0, "DEC": 20.0})  # fmt: skip
    assert io.detect_format(path) == "4most"
    (s,) = io.read(path)
    keep = ~(gap & (w > 5800))
    np.testing.assert_allclose(s.wave, w[keep], rtol=1e-12)
    assert s.meta["arm"] == "joined" and (s.ra, s.dec) == (10.0, 20.0)
    assert abs(located(mf, s) - LAMBDA2796) < 1.0
    green = mgfast.grid.arm_of(w) == 1
    arm = write_4most(tmp_path / "g.fits", w[green], q.flux[0][green], e[green])
    (g,) = io.read(arm)
    assert g.meta["arm"] == "green"
    r = mf.detect(g.flux, wave=g.wave, err=g.err, normalised=False)
    assert r.flags & mgfast.SpectrumFlag.ARM_MISSING_BLUE and r.flags & (
        mgfast.SpectrumFlag.ARM_MISSING_RED
    )
    assert abs(float(r.wavelength) - LAMBDA2796) < 1.0


def test_sdss_needs_the_low_resolution_flag(tmp_path):
    w = 10 ** (3.5500 + 1e-4 * np.arange(3800))  # 3548-8910 Å, SDSS's log-linear grid
    flux = np.ones(w.size, np.float32)
    ivar = np.full(w.size, 25.0, np.float32)
    and_mask = np.zeros(w.size, np.int32)
    and_mask[500:510] = 1 << 23
    path = write_sdss(tmp_path / "spec-1234-56789-0042.fits", w, flux, ivar, and_mask)
    assert io.detect_format(path) == "sdss"
    with pytest.raises(io.LowResolutionError, match="allow_low_resolution"):
        io.read(path)
    with pytest.warns(io.LowResolutionWarning, match="R = 20000"):
        (s,) = io.read(path, allow_low_resolution=True)
    loglam = np.log10(w).astype(np.float32).astype(np.float64)  # as stored: 'E'
    np.testing.assert_allclose(s.wave, 10.0**loglam, rtol=1e-12)
    np.testing.assert_array_equal(np.flatnonzero(s.mask), np.arange(500, 510))
    np.testing.assert_array_equal(s.ivar, ivar)
    assert s.id == "1234-56789-0042" and (s.ra, s.dec) == (210.5, 12.25)
    assert s.resolution is not None and s.resolution < 5000
    r = Detector(method="matched-filter").detect(s.flux, wave=s.wave, ivar=s.ivar,
                                                 resolution=s.resolution)  # fmt: skip
    assert r.flags & mgfast.SpectrumFlag.LOW_RESOLUTION


def test_desi_cameras_combined_by_inverse_variance(tmp_path):
    step = 0.8
    wb = 3600.0 + step * np.arange(2751)  # 3600-5800
    wr = 5760.0 + step * np.arange(2326)  # 5760-7620: overlaps B on 5760-5800
    wz = 7520.0 + step * np.arange(2881)  # 7520-9824: overlaps R on 7520-7620
    n = 3
    fb, fr, fz = (np.full((n, w.size), v, np.float32) for w, v in ((wb, 1.0), (wr, 3.0), (wz, 5.0)))
    ib, ir, iz = (np.full((n, w.size), v, np.float32) for w, v in ((wb, 1.0), (wr, 3.0), (wz, 2.0)))
    mb, mr, mz = (np.zeros((n, w.size), np.int32) for w in (wb, wr, wz))
    mr[1, :10] = 1  # target 1: R's first overlap pixels bad, so B alone counts there
    cams = {"B": (wb, fb, ib, mb), "R": (wr, fr, ir, mr), "Z": (wz, fz, iz, mz)}
    path = write_desi(tmp_path / "coadd.fits", cams, targetid=[39627, 39628, 39629],
                      ra=[1.0, 2.0, 3.0], dec=[-1.0, -2.0, -3.0])  # fmt: skip
    assert io.detect_format(path) == "desi"
    with pytest.raises(io.LowResolutionError):
        io.read(path)
    with pytest.warns(io.LowResolutionWarning):
        spectra = io.read(path, allow_low_resolution=True)
    assert [s.id for s in spectra] == ["39627", "39628", "39629"]
    assert [s.ra for s in spectra] == [1.0, 2.0, 3.0] and spectra[2].dec == -3.0
    s0, s1 = spectra[0], spectra[1]
    assert s0.wave.size == np.unique(np.round(np.concatenate([wb, wr, wz]), 3)).size
    at = np.searchsorted(s0.wave, 5780.0)  # B and R overlap: (1·1 + 3·3) / (1 + 3)
    assert s0.flux[at] == pytest.approx(2.5) and s0.ivar[at] == pytest.approx(4.0)
    at = np.searchsorted(s0.wave, 7600.0)  # R and Z: (3·3 + 5·2) / (3 + 2)
    assert s0.flux[at] == pytest.approx(3.8) and s0.ivar[at] == pytest.approx(5.0)
    at = np.searchsorted(s1.wave, wr[5])  # R masked there for target 1: B alone
    assert s1.flux[at] == pytest.approx(1.0) and s1.ivar[at] == pytest.approx(1.0)
    assert s0.flux[np.searchsorted(s0.wave, 4000.0)] == pytest.approx(1.0)


def test_desi_misaligned_cameras_are_an_error(tmp_path):
    wb = 3600.0 + 0.8 * np.arange(2751)
    wr = 5760.3 + 0.8 * np.arange(2326)
    one = {c: (w, np.ones((1, w.size)), np.ones((1, w.size)), np.zeros((1, w.size)))
           for c, w in (("B", wb), ("R", wr))}  # fmt: skip
    path = write_desi(tmp_path / "x.fits", one, [1], [0.0], [0.0])
    with pytest.warns(io.LowResolutionWarning), pytest.raises(io.ReadError, match="line up"):
        io.read(path, allow_low_resolution=True)


@pytest.mark.parametrize("layout", ["rows-of-arrays", "row-per-pixel"])
def test_generic_fits_table(tmp_path, mf, layout):
    q = quasar(2)
    if layout == "rows-of-arrays":
        n = q.wave.size
        cols = [fits.Column("ID", "8A", array=["qso-a", "qso-b"]),
                fits.Column("RA", "D", array=[5.0, 6.0]),
                fits.Column("LAMBDA", f"{n}D", unit="nm", array=np.tile(q.wave / 10, (2, 1))),
                fits.Column("FLUX", f"{n}E", array=q.flux),
                fits.Column("IVAR", f"{n}E", array=1 / q.err**2)]  # fmt: skip
    else:
        cols = [fits.Column("wavelength", "D", unit="Angstrom", array=q.wave),
                fits.Column("flux", "E", array=q.flux[0]),
                fits.Column("sigma", "E", array=q.err[0])]  # fmt: skip
    path = tmp_path / "t.fits"
    table = fits.BinTableHDU.from_columns(cols)
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    assert io.detect_format(path) == "fits-table"
    spectra = io.read(path)
    assert len(spectra) == (2 if layout == "rows-of-arrays" else 1)
    for s in spectra:
        np.testing.assert_allclose(s.wave, q.wave, rtol=1e-12)
        assert abs(located(mf, s) - LAMBDA2796) < 1.0
    if layout == "rows-of-arrays":
        assert [s.id for s in spectra] == ["qso-a", "qso-b"] and spectra[1].ra == 6.0
        np.testing.assert_allclose(spectra[1].ivar, 1 / q.err[1] ** 2, rtol=1e-6)


def test_numpy_files(tmp_path, mf):
    q = quasar(2)
    npz = tmp_path / "s.npz"
    np.savez(npz, wave=io.vacuum_to_air(q.wave) / 10, flux=q.flux, err=q.err, air=True,
             wave_unit="nm", id=np.array(["a", "b"]), ra=np.array([1.0, 2.0]))  # fmt: skip
    spectra = io.read(npz)
    assert [s.id for s in spectra] == ["a", "b"] and spectra[1].ra == 2.0
    np.testing.assert_allclose(spectra[0].wave, q.wave, rtol=1e-11)
    assert spectra[0].wave is spectra[1].wave  # one grid: preprocessed in one call
    assert abs(located(mf, spectra[1]) - LAMBDA2796) < 1.0
    npy = tmp_path / "s.npy"
    np.save(npy, np.stack([q.wave, q.flux[0], q.err[0]]))
    (s,) = io.read(npy)
    np.testing.assert_array_equal(s.err, q.err[0].astype(np.float32))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(io.ReadError, match="unreadable"):  # pickles are refused
        io.read(tmp_path / "obj.npy")


def test_bad_files_raise_read_errors_naming_the_problem(tmp_path):
    q = quasar()
    good = write_eso_sdp(tmp_path / "g.fits", q.wave, q.flux[0], q.err[0])
    data = good.read_bytes()
    (tmp_path / "trunc.fits").write_bytes(data[: len(data) - 5000])
    with pytest.raises(io.ReadError, match="truncated"):
        io.read(tmp_path / "trunc.fits")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 200)
    with pytest.raises(io.ReadError, match="FITS"):
        io.read(tmp_path / "junk.fits")
    no_err = tmp_path / "noerr.fits"
    t = fits.BinTableHDU.from_columns(_cols(q, without="ERR"))
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"PRODCATG": "SCIENCE.SPECTRUM"})), t]
                 ).writeto(no_err)  # fmt: skip
    with pytest.raises(io.ReadError, match="no ERR column"):
        io.read(no_err)
    with pytest.raises(io.ReadError, match="COADD"):
        io.read(good, "sdss")
    with pytest.raises(ValueError, match="format"):
        io.read(good, "nonsense")
    w_nm = write_eso_sdp(tmp_path / "nm.fits", q.wave, q.flux[0], q.err[0], unit="nm")
    with pytest.raises(io.ReadError, match="misses every arm"):  # Å labelled as nm
        io.read(w_nm)


def _cols(q, without: str) -> list:
    n = q.wave.size
    cols = {"WAVE": q.wave, "FLUX": q.flux[0], "ERR": q.err[0]}
    return [fits.Column(k, f"{n}D", array=v[None]) for k, v in cols.items() if k != without]


def test_mgfast_reads_the_sets_mgfast_simulate_writes(tmp_path):
    """mgfast simulate -o set.h5, then mgfast.io.read / mgfast detect on it: the same spectra;
    an HDF5 file that is not such a set is a ReadError saying so."""
    import h5py

    from mgfast.cli import main

    out = tmp_path / "set.h5"
    assert main(["simulate", "12", "-o", str(out), "--seed", "5"]) == 0
    spectra = io.read(out)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(np.stack([s.flux for s in spectra]), f["flux"][()])
        np.testing.assert_array_equal(spectra[3].err, f["err"][3])
    assert spectra[0].normalised and spectra[11].id == "set.h5[11]"
    assert io.detect_format(out) == "mgfast-hdf5"
    assert main(["detect", str(tmp_path), "-o", str(tmp_path / "c.csv"),
                 "--method", "matched-filter"]) == 0  # fmt: skip
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(io.ReadError, match="not an mgfast simulated set"):
        io.read(tmp_path / "other.h5")


def test_sdss_pipeline_redshift_becomes_z_em(tmp_path):
    """An SDSS spec file's SPECOBJ Z is the spectrum's z_em (meta); a file without it has none."""
    from astropy.io import fits

    w = 10 ** (3.5500 + 1e-4 * np.arange(3800))
    args = (w, np.ones(w.size, np.float32), np.full(w.size, 25.0, np.float32),
            np.zeros(w.size, np.int32))  # fmt: skip
    plain = write_sdss(tmp_path / "spec-1-2-3.fits", *args)
    with pytest.warns(io.LowResolutionWarning):
        (s,) = io.read(plain, allow_low_resolution=True)
    assert "z_em" not in s.meta
    path = write_sdss(tmp_path / "spec-1-2-4.fits", *args)
    z_col = fits.Column(name="Z", format="E", array=np.array([2.345]))
    with fits.open(path, mode="append") as h:
        h.append(fits.BinTableHDU.from_columns([z_col], name="SPECOBJ"))
    with pytest.warns(io.LowResolutionWarning):
        (s,) = io.read(path, allow_low_resolution=True)
    assert s.meta["z_em"] == pytest.approx(2.345, rel=1e-6)
