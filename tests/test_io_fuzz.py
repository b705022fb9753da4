"""The readers' contract under corrupt input (docs/io.md, "Fuzzing"): a file gives spectra that
preprocessing accepts, or ``mgfast.io.ReadError`` with its path and a reason, whatever the
library underneath raised; never another exception, a crash, a hang or a runaway allocation.

Seeded hypothesis fuzzing over every reader (mgfast.testing.fuzz_files mutates valid files),
then one regression test per failure the fuzzing found (issue 21 item 4)."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fitsio")
pytest.importorskip("astropy")
pytest.importorskip("h5py")

from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mgfast import io
from mgfast.testing import fuzz_files
from mgfast.testing.spectrum_files import quasar, write_eso_sdp

FITS_BASES = ("eso-sdp", "4most", "sdss", "desi", "table-rows", "table-pixels", "table-vla")
GZ_BASES = ("eso-sdp.gz", "table-vla.gz", "sdss.gz")
OTHER_BASES = ("npz", "npy", "hdf5")
OUTCOMES = {"ok", "ReadError", "ReadError-wrapped", "preprocess-ValueError"}


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, fuzz_files.Base]:
    return fuzz_files.base_files(tmp_path_factory.mktemp("fuzz-bases"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cases")


def test_the_base_files_read(bases, scratch):
    for b in bases.values():
        path = scratch / f"base{b.suffix}"
        path.write_bytes(b.data)
        assert io.detect_format(path) == b.format, b.name
        assert fuzz_files.check_file(str(path), None)[0] == "ok", b.name


def _fuzz(bases, scratch, name: str, kind_at: int, seed: int, forced: bool) -> None:
    base = bases[name]
    kinds = fuzz_files.kinds(base)
    kind = kinds[kind_at % len(kinds)]
    data = fuzz_files.mutate(base, kind, np.random.default_rng(seed))
    path = scratch / f"case{base.suffix}"
    path.write_bytes(data)
    outcome, detail = fuzz_files.check_file(str(path), base.format if forced else None)
    assert outcome in OUTCOMES, (name, kind, seed, detail)
    if outcome.startswith("ReadError"):
        assert detail.startswith(str(path)), detail


FUZZ = dict(
    derandomize=True,  # the same cases on every run: seeded, reproducible in CI
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CASE = dict(kind_at=st.integers(0, 50), seed=st.integers(0, 2**32 - 1), forced=st.booleans())


@settings(max_examples=3000, **FUZZ)
@given(name=st.sampled_from(FITS_BASES), **CASE)
def test_fuzzed_fits_files_give_spectra_or_read_errors(bases, scratch, name, kind_at, seed, forced):
    _fuzz(bases, scratch, name, kind_at, seed, forced)


@settings(max_examples=1000, **FUZZ)
@given(name=st.sampled_from(GZ_BASES), **CASE)
def test_fuzzed_gzip_files_give_spectra_or_read_errors(bases, scratch, name, kind_at, seed, forced):
    _fuzz(bases, scratch, name, kind_at, seed, forced)


@settings(max_examples=1000, **FUZZ)
@given(name=st.sampled_from(OTHER_BASES), **CASE)
def test_fuzzed_numpy_and_hdf5_files_give_spectra_or_read_errors(
    bases, scratch, name, kind_at, seed, forced
):
    _fuzz(bases, scratch, name, kind_at, seed, forced)


# ---- regressions: each failed before with another exception (or none) ------------------------


def _sdp(tmp_path: Path, name: str = "s.fits") -> Path:
    q = quasar()
    return write_eso_sdp(tmp_path / name, q.wave[::8], q.flux[0, ::8], q.err[0, ::8])


def test_random_bytes_are_not_a_fits_file(tmp_path):
    junk = tmp_path / "junk.fits"  # was: UnicodeDecodeError "'utf-8' codec can't decode..."
    junk.write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 6000, dtype=np.uint8)))
    for call in (io.read, io.detect_format):
        with pytest.raises(io.ReadError, match="not a FITS file") as e:
            call(junk)
        assert e.value.path == str(junk) and e.value.reason.startswith("not a FITS file")


def test_a_non_ascii_header_card_is_a_read_error(tmp_path):
    path = _sdp(tmp_path)  # the table's XTENSION string ends in a non-ASCII byte, not a quote
    path.write_bytes(path.read_bytes().replace(b"= 'BINTABLE'", b"= 'BINTABLE\xa3", 1))
    for fmt in ("eso-sdp", None):
        with pytest.raises(io.ReadError, match=r"a header after the first .* not ASCII") as e:
            io.read(path, fmt)  # was: UnicodeDecodeError (with the format given)
        assert e.value.path == str(path)


def test_truncated_gzip_files_are_read_errors(tmp_path):
    plain = _sdp(tmp_path)
    gz = gzip.compress(plain.read_bytes(), mtime=0)
    cut = tmp_path / "cut.fits.gz"  # the gzip stream cut short: was OSError from fitsio
    cut.write_bytes(gz[: len(gz) // 2])
    for call in (io.read, io.detect_format):
        with pytest.raises(io.ReadError, match="truncated or corrupt gzip"):
            call(cut)
    inner = tmp_path / "inner.fits.gz"  # a whole gzip stream of a truncated FITS file
    inner.write_bytes(gzip.compress(plain.read_bytes()[:-3000], mtime=0))
    with pytest.raises(io.ReadError, match="truncated"):  # was: skipped, then OSError
        io.read(inner)
    ok = tmp_path / "ok.fits.gz"
    ok.write_bytes(gz)
    np.testing.assert_array_equal(io.read(ok)[0].flux, io.read(plain)[0].flux)


def test_numpy_header_failures_are_read_errors(tmp_path):
    good = tmp_path / "g.npy"
    q = quasar()
    np.save(good, np.stack([q.wave[::8], q.flux[0, ::8]]))
    data = good.read_bytes()
    bad = tmp_path / "b.npy"  # an unterminated string in the header: was tokenize.TokenError
    bad.write_bytes(data.replace(b"'descr'", b"'descr ", 1))
    with pytest.raises(io.ReadError, match=r"unreadable \.npy"):
        io.read(bad)
    npz = tmp_path / "s.npz"  # a member claiming 2 x 2^32 doubles: refused before allocating
    np.savez(npz, wave=q.wave[::8], flux=q.flux[0, ::8])
    z = fuzz_files.zipfile.ZipFile(npz)
    members = {n: z.read(n) for n in z.namelist()}
    members["flux.npy"] = members["flux.npy"].replace(
        f"'shape': ({q.wave[::8].size},)".encode(), b"'shape': (2, 4294967295)"
    )
    with fuzz_files.zipfile.ZipFile(npz, "w") as out:
        for n, b in members.items():
            out.writestr(n, b)
    with pytest.raises(io.ReadError, match=r"flux\.npy: its header says shape"):
        io.read(npz)


def test_an_image_hdu_named_coadd(tmp_path):
    path = tmp_path / "img.fits"  # was AttributeError: 'ImageHDU' has no get_colnames
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(10), name="COADD")]).writeto(path)
    with pytest.raises(io.ReadError, match="no binary table"):
        io.read(path)
    with pytest.raises(io.ReadError, match="COADD"):
        io.read(path, "sdss")


def _vla(path: Path, lengths=(1450, 1150)) -> tuple[Path, list[np.ndarray]]:
    q = quasar(len(lengths))
    w = q.wave[::16]
    waves = [w[:n] for n in lengths]
    cols = [
        fits.Column("WAVE", "PD()", array=np.array(waves, dtype=object)),
        fits.Column("FLUX", "PE()", array=np.array([q.flux[i, ::16][:n]
                                                    for i, n in enumerate(lengths)], dtype=object)),
        fits.Column("ERR", "PE()", array=np.array([q.err[i, ::16][:n]
                                                   for i, n in enumerate(lengths)], dtype=object)),
    ]  # fmt: skip
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path, waves


@pytest.mark.parametrize("gz", [False, True])
def test_variable_length_rows_are_read_with_their_own_lengths(tmp_path, gz):
    path, waves = _vla(tmp_path / "v.fits")
    if gz:
        path = tmp_path / "v.fits.gz"
        path.write_bytes(gzip.compress((tmp_path / "v.fits").read_bytes()))
    spectra = io.read(path)  # was: zero-padded to the longest row, refused as not increasing
    assert [s.wave.size for s in spectra] == [w.size for w in waves]
    for s, w in zip(spectra, waves, strict=True):
        np.testing.assert_array_equal(s.wave, w)
        assert s.flux.size == s.err.size == w.size


def _corrupt_descriptor(path: Path, row: int, count: int) -> None:
    data = bytearray(path.read_bytes())
    hdus = fuzz_files.fits_layout(bytes(data))
    start = hdus[1][1]  # the table's data: WAVE's descriptor (count, offset) first in each row
    naxis1 = int(hdus[1][3]["NAXIS1"])
    data[start + row * naxis1 : start + row * naxis1 + 4] = count.to_bytes(4, "big")
    path.write_bytes(bytes(data))


CORRUPT_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from mgfast import io
try:
    io.read(sys.argv[1])
except io.ReadError as e:
    print("ReadError:", e)
"""


@pytest.mark.parametrize("count", [0xFFFFFFFF, 0x80000000, 3_000_000])
def test_a_corrupt_vla_descriptor_is_refused_before_allocating(tmp_path, count):
    path, _ = _vla(tmp_path / "v.fits")
    _corrupt_descriptor(path, 1, count)  # row 1 asks for more than the heap holds
    # in a child with 3 GiB of address space: was a MemoryError, or a segfault
    r = subprocess.run([sys.executable, *(["-S"] if sys.flags.no_site else []), "-c",
                        CORRUPT_READ, str(path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "descriptor asks for" in r.stdout and f"{count:,} values" in r.stdout, r.stdout


def test_other_exceptions_become_read_errors_but_interrupts_do_not(tmp_path, monkeypatch):
    path = _sdp(tmp_path)

    def broken(exc):
        def reader(f, p, allow):
            raise exc

        return reader

    monkeypatch.setitem(io.formats.FITS_READERS, "eso-sdp", broken(RuntimeError("boom")))
    with pytest.raises(io.ReadError, match="RuntimeError: boom") as e:
        io.read(path)
    assert isinstance(e.value.__cause__, RuntimeError)
    assert e.value.path == str(path) and e.value.reason.endswith("(RuntimeError: boom)")
    monkeypatch.setitem(io.formats.FITS_READERS, "eso-sdp", broken(MemoryError()))
    with pytest.raises(io.ReadError, match="memory"):
        io.read(path)
    monkeypatch.setitem(io.formats.FITS_READERS, "eso-sdp", broken(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        io.read(path)


def test_read_errors_carry_path_and_reason(tmp_path):
    q = quasar()
    path = write_eso_sdp(tmp_path / "nm.fits", q.wave, q.flux[0], q.err[0], unit="nm")
    with pytest.raises(io.ReadError) as e:
        io.read(path)
    assert e.value.path == str(path) and str(e.value).startswith(str(path))
    assert e.value.reason == str(e.value)[len(str(path)) :]
    assert e.value.reason.startswith("[1]: wavelength range")
    back = pickle.loads(pickle.dumps(e.value))  # dask workers send errors back pickled
    assert (str(back), back.path, back.reason) == (str(e.value), e.value.path, e.value.reason)


def test_nonsense_sizes_and_values_in_headers_are_read_errors(tmp_path):
    q = quasar()
    w, f, e = q.wave[::8], q.flux[0, ::8], q.err[0, ::8]
    res0 = write_eso_sdp(tmp_path / "r.fits", w, f, e, header={"SPEC_RES": -5.0})
    with pytest.raises(io.ReadError, match="not positive"):  # was: spectra preprocessing refused
        io.read(res0, allow_low_resolution=True)
    npz = tmp_path / "neg.npz"
    np.savez(npz, wave=np.concatenate([[-1.0], w[1:]]), flux=f)
    with pytest.raises(io.ReadError, match="must be positive"):
        io.read(npz)


def test_hdf5_wavelengths_are_checked(tmp_path):
    import h5py

    base = fuzz_files.base_files(tmp_path, ("hdf5",))["hdf5"]
    path = tmp_path / "set.h5"
    path.write_bytes(base.data)
    with h5py.File(path, "r+") as f:
        f["wavelength"][5] = np.nan
    with pytest.raises(io.ReadError, match="NaN"):  # was: spectra preprocessing refused
        io.read(path)


def test_detect_files_reports_a_corrupt_file_by_its_reason(tmp_path):
    from mgfast.file_read import read_or_reason as _read_or_reason

    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"\xfa\xfb" * 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason = _read_or_reason(str(junk), None, False)
    assert reason.startswith("not a FITS file"), reason


def test_a_string_column_that_is_not_ascii_is_a_read_error(tmp_path):
    base = fuzz_files.base_files(tmp_path, ("table-rows",))["table-rows"]
    path = tmp_path / "ids.fits"  # the ID column's "qso-a" with a non-ASCII byte
    path.write_bytes(base.data.replace(b"qso-a", b"qso-\xe9", 1))
    with pytest.raises(io.ReadError, match=r"\[1\]: text that is not ASCII in column ID"):
        io.read(path)  # was: UnicodeDecodeError
