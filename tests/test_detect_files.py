"""Detection over files (Detector.detect_files, `mgfast detect`): one row per spectrum and one error
per bad file, never a crash; exit codes; resume after SIGKILL; dask gives the same catalogue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fitsio")
pytest.importorskip("astropy")

import fitsio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mgfast
import mgfast.detect_files as detect_files_module
from mgfast import detect_dask, file_read
from mgfast.catalog import errors_sibling, read_catalog
from mgfast.cli import PARTIAL, main
from mgfast.detect_files import Journal, expand_paths, process_file
from mgfast.detector import Detector
from mgfast.testing.spectrum_files import LAMBDA2796, quasar, write_4most
from mgfast.testing.survey import corrupt, make_run, same_catalogue, write_fast


def counting(calls: list[int]) -> Detector:
    """A matched-filter Detector that appends the size of every detect call to ``calls``."""

    class Counting(Detector):
        def detect(self, flux, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(len(np.atleast_2d(flux)))
            return super().detect(flux, *args, **kwargs)

    return Counting(method="matched-filter")


def test_thousand_files_ten_corrupt_give_990_rows_10_errors_exit_3(tmp_path, capsys):
    d, bad, sim = make_run(tmp_path, 990)
    out = tmp_path / "cat.fits"
    t0 = time.perf_counter()
    rc = main(["detect", str(d), "-o", str(out), "--method", "matched-filter", "--threads", "2"])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == PARTIAL == 3
    cat = read_catalog(out)
    assert len(cat) == 990 and len(cat.errors) == 10
    assert sorted(e.file for e in cat.errors) == sorted(map(str, bad))
    # one line per bad file on stderr, naming it; never a traceback
    bad_lines = [line for line in err.splitlines() if line.startswith("mgfast detect: /")]
    assert len(bad_lines) == 10 and "Traceback" not in err
    assert all(any(str(b) in line for line in bad_lines) for b in bad)
    assert "spectra/s" in err
    # rows in input order, each spectrum once, and the filter's answers
    np.testing.assert_array_equal(cat.columns["id"], [f"qso{i:05d}" for i in range(990)])
    has = sim.truth.has_absorber
    found = cat.detected
    assert found[has].mean() > 0.9 and found[~has].mean() < 0.05
    hit = found & has
    assert np.median(np.abs(cat.wavelength[hit] - sim.truth.lambda2796[hit])) < 1.0
    assert not (tmp_path / "cat.fits.parts").exists()
    print(f"1000 files: {took:.1f} s")


@pytest.fixture(scope="module")
def mf():
    return Detector(method="matched-filter", threads=1)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    q = quasar()
    keep = (q.wave > 5300) & (q.wave < 5700)  # the green arm only: a small file
    p = tmp_path_factory.mktemp("tpl") / "t.fits"
    write_4most(p, q.wave[keep], q.flux[0][keep], q.err[0][keep])
    return p.read_bytes()


def check_outcome(path: Path, outcome) -> None:
    cols, reason = outcome
    assert (cols is None) != (reason is None)
    if reason is not None:
        assert reason and "\n" not in reason
    else:
        assert len(cols["probability"]) >= 1


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.data())
def test_fuzzed_bytes_never_crash(tmp_path_factory, template, mf, data):
    buf = bytearray(template)
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "both"]))
    if kind in ("truncate", "both"):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    if kind in ("overwrite", "both") and buf:
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(buf) - 1))
            chunk = data.draw(st.binary(min_size=1, max_size=16))
            buf[at : at + len(chunk)] = chunk
    p = tmp_path_factory.mktemp("fz") / "f.fits"
    p.write_bytes(bytes(buf))
    check_outcome(p, process_file(mf, str(p), None, False))


COLUMN_KINDS = st.sampled_from(["f8", "f4", "i2", "S4", "missing", "nan", "short"])


@FUZZ
@given(
    wave=COLUMN_KINDS,
    flux=COLUMN_KINDS,
    err=COLUMN_KINDS,
    fmt=st.sampled_from([None, "4most", "eso-sdp", "fits-table"]),
)
def test_fuzzed_tables_never_crash(tmp_path_factory, mf, wave, flux, err, fmt):
    w = np.linspace(5200.0, 5600.0, 400)
    values = {"WAVE": w, "FLUX": np.ones(400), "ERR_FLUX": np.full(400, 0.1)}
    dtype, cols = [], {}
    for name, kind in (("WAVE", wave), ("FLUX", flux), ("ERR_FLUX", err)):
        if kind == "missing":
            continue
        v = values[name]
        if kind == "nan":
            v = np.full(400, np.nan)
        elif kind == "short":
            v = v[:7]
        elif kind == "S4":
            v = np.array([b"abcd"])
        dt = kind if kind in ("f8", "f4", "i2", "S4") else "f8"
        dtype.append((name, dt, v.size) if dt != "S4" else (name, dt))
        cols[name] = v.astype(dt) if dt != "S4" else v[0]
    p = tmp_path_factory.mktemp("ft") / "t.fits"
    with fitsio.FITS(str(p), "rw", clobber=True) as f:
        f.write(None, header=[{"name": "INSTRUME", "value": "4MOST"}])
        if dtype:
            data = np.zeros(1, dtype=dtype)
            for k, v in cols.items():
                data[k] = v
            f.write(data)
    check_outcome(p, process_file(mf, str(p), fmt, False))


def test_a_non_ascii_header_card_loses_neither_the_next_file_nor_the_catalogue(
    tmp_path, template, mf
):
    """cfitsio keeps error messages on a process-wide stack; a header card that is not ASCII
    left undecodable bytes there, and fitsio's next (expected, internal) error, the end of the HDU
    list met when the catalogue is written, raised UnicodeDecodeError: the run lost its output."""
    bad = bytearray(template)
    at = bad.index(b"XTENSION= 'BINTABLE'")
    bad[at + 17 : at + 24] = b"K\x92\xf0\x16!\xca'"  # the card's value: 'BINTAK' and non-ASCII
    (tmp_path / "bad.fits").write_bytes(bytes(bad))
    (tmp_path / "good.fits").write_bytes(template)
    cat = mf.detect_files([tmp_path / "bad.fits", tmp_path / "good.fits"])
    assert len(cat) == 1 and [e.file for e in cat.errors] == [str(tmp_path / "bad.fits")]
    for k in range(2):  # after each, a corrupt file has just been read
        process_file(mf, str(tmp_path / "bad.fits"), None, False)
        out = tmp_path / f"cat{k}.fits"
        cat.write(out)
        back = read_catalog(out)
        assert len(back) == 1 and len(back.errors) == 1
    process_file(mf, str(tmp_path / "bad.fits"), None, False)
    cols, reason = process_file(mf, str(tmp_path / "good.fits"), None, False)
    assert reason is None and len(cols["probability"]) == 1


def test_all_nan_flux_is_a_flagged_row_nan_wavelengths_an_error(tmp_path, mf):
    w = mgfast.grid.wavelength()
    nan = np.full(w.size, np.nan, np.float32)
    write_fast(tmp_path / "a.fits", w, nan, nan, "allnan")
    bad = corrupt(tmp_path / "b.fits", "nan-wave", b"")
    cat = mf.detect_files([tmp_path / "a.fits", bad])
    assert len(cat) == 1 and cat.columns["flags"][0] & mgfast.SpectrumFlag.ALL_MASKED
    assert cat.probability[0] == 0 and not cat.detected[0]
    assert [e.file for e in cat.errors] == [str(bad)] and "NaN" in cat.errors[0].reason


def test_paths_directories_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sub").mkdir()
    for p in ("a/x.fits", "a/sub/y.fits.gz", "a/notes.txt", "a/.hidden.fits", "b.npz"):
        (tmp_path / p).write_bytes(b"")
    files = expand_paths([tmp_path / "a", str(tmp_path / "*.npz"), tmp_path / "a" / "x.fits"])
    assert files == [str(tmp_path / "a/sub/y.fits.gz"), str(tmp_path / "a/x.fits"),
                     str(tmp_path / "b.npz")]  # fmt: skip
    assert expand_paths([tmp_path / "missing.fits"]) == [str(tmp_path / "missing.fits")]
    # a pattern that matches nothing stays in: its error row says so
    assert expand_paths([str(tmp_path / "*.nothing")]) == [str(tmp_path / "*.nothing")]


def test_csv_and_parquet_catalogues_with_their_error_tables(tmp_path, capsys):
    d, bad, _ = make_run(tmp_path, 6, corruptions=("junk", "empty"))
    out = tmp_path / "cat.csv"
    assert main(["detect", str(d), "-o", str(out), "--method", "matched-filter"]) == PARTIAL
    rows = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8",
                         skip_header=1)  # fmt: skip
    fits_out = tmp_path / "cat.fits"
    assert main(["detect", str(d), "-o", str(fits_out), "--method", "matched-filter"]) == PARTIAL
    ref = read_catalog(fits_out)
    np.testing.assert_array_equal(rows["id"], ref.columns["id"])
    np.testing.assert_allclose(rows["lambda2796"], ref.wavelength, rtol=1e-12)
    errs = errors_sibling(out).read_text().splitlines()
    assert errs[1] == "file,reason" and len(errs) == 2 + len(bad)
    pq = pytest.importorskip("pyarrow.parquet")
    pout = tmp_path / "cat.parquet"
    assert main(["detect", str(d), "-o", str(pout), "--method", "matched-filter"]) == PARTIAL
    t = pq.read_table(pout)
    np.testing.assert_array_equal(t.column("probability").to_numpy(), ref.probability)
    assert pq.read_table(errors_sibling(pout)).num_rows == len(bad)
    assert b"matched-filter" in t.schema.metadata[b"mgfast"]


def test_fits_header_records_the_run(tmp_path, capsys):
    d, _, _ = make_run(tmp_path, 3, corruptions=())
    out = tmp_path / "c.fits"
    assert main(["detect", str(d), "-o", str(out), "--threshold", "0.5"]) == 0
    hdr = fitsio.read_header(str(out), "CATALOG")
    det = Detector()
    assert hdr["MGFAST"] == mgfast.__version__ and hdr["MODELSHA"] == det.model.sha256
    assert hdr["THRESH"] == 0.5 and hdr["METHOD"] == "network" and hdr["NSPEC"] == 3
    assert hdr["CMDLINE"].startswith("mgfast detect ") and "--threshold 0.5" in hdr["CMDLINE"]
    assert hdr["DATE"].startswith("20")
    assert fitsio.read_header(str(out), "ERRORS")["NAXIS2"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "c.txt"], "must be .fits, .csv, .parquet, .h5 or .hdf5"),
        (["-o", "nodir/c.fits"], "does not exist"),
        (["-o", "c.fits", "--device", "cuda:x"], "--device: expected"),
        (["-o", "c.fits", "--device", "tpu"], "--device"),
        (["-o", "c.fits", "--files-per-chunk", "0"], "--files-per-chunk"),
        (["-o", "c.fits", "--dask", "local:0"], "local:N"),
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    d, _, _ = make_run(tmp_path, 1, corruptions=())
    if "--dask" in argv:
        pytest.importorskip("distributed")
    assert main(["detect", str(d), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_low_resolution_needs_the_flag(tmp_path, capsys):
    from mgfast.testing.spectrum_files import write_sdss

    w = 10 ** (3.55 + 1e-4 * np.arange(3800))
    p = write_sdss(tmp_path / "spec.fits", w, np.ones(w.size), np.full(w.size, 25.0),
                   np.zeros(w.size, np.int32))  # fmt: skip
    out = tmp_path / "c.fits"
    q = quasar()
    good = write_4most(tmp_path / "good.fits", q.wave, q.flux[0], q.err[0])
    # without the flag the low-resolution file is an error row and the run goes on
    assert main(["detect", str(p), str(good), "-o", str(out), "--method", "matched-filter"]) == 3
    assert "--allow-low-resolution" in capsys.readouterr().err
    cat = read_catalog(out)
    assert list(cat.columns["file"]) == [str(good)] and [e.file for e in cat.errors] == [str(p)]
    assert "--allow-low-resolution" in cat.errors[0].reason
    argv = ["detect", str(p), "-o", str(out), "--method", "matched-filter", "--overwrite",
            "--allow-low-resolution"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "R = 20000" in err
    cat = read_catalog(out)
    assert cat.columns["flags"][0] & mgfast.SpectrumFlag.LOW_RESOLUTION


def test_existing_output_and_leftover_journal_are_refused(tmp_path, capsys):
    d, _, _ = make_run(tmp_path, 2, corruptions=())
    out = tmp_path / "c.fits"
    out.write_text("keep")
    assert main(["detect", str(d), "-o", str(out)]) == 2 and out.read_text() == "keep"
    (tmp_path / "c.fits.parts").mkdir()
    assert main(["detect", str(d), "-o", str(out), "--overwrite"]) == 2
    assert "--resume" in capsys.readouterr().err


def kill_after_chunks(detect_args: list[str], parts: Path, n_chunks: int) -> None:
    """Run `mgfast detect` in a subprocess and SIGKILL it once its journal holds n_chunks."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(Path(mgfast.__file__).parents[1]), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "mgfast.cli", "detect", *detect_args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(parts.glob("chunk-*.npz"))) >= n_chunks:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def test_sigkill_then_resume_gives_the_clean_catalogue(tmp_path, capsys):
    d, _, _ = make_run(tmp_path, 300, corruptions=("junk", "truncated", "empty"))
    clean = tmp_path / "clean.fits"
    args = ["--method", "matched-filter", "--threads", "1", "--files-per-chunk", "1"]
    assert main(["detect", str(d), "-o", str(clean), *args]) == PARTIAL
    out = tmp_path / "killed.fits"
    parts = tmp_path / "killed.fits.parts"
    kill_after_chunks([str(d), "-o", str(out), *args], parts, 20)
    n_chunks = len(list(parts.glob("chunk-*.npz")))
    assert 20 <= n_chunks < 303 and not out.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unreadable chunk would warn
        done = Journal(parts).load()
    assert len(done) == n_chunks  # one file per chunk: every chunk written is whole
    assert main(["detect", str(d), "-o", str(out), *args, "--resume"]) == PARTIAL
    a, b = read_catalog(clean), read_catalog(out)
    same_catalogue(a, b)
    assert len(set(b.columns["id"])) == len(b) == 300 and not parts.exists()


def test_dask_local_cluster_gives_the_local_catalogue(tmp_path, capsys):
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    d, _, _ = make_run(tmp_path, 10, corruptions=("junk", "no-err-column"))
    local, dist = tmp_path / "local.fits", tmp_path / "dask.fits"
    args = ["--files-per-chunk", "3"]
    assert main(["detect", str(d), "-o", str(local), *args]) == PARTIAL
    assert main(["detect", str(d), "-o", str(dist), *args, "--dask", "local:2"]) == PARTIAL
    assert not detect_dask._WORKER_DETECTORS  # the work ran in the worker processes
    same_catalogue(read_catalog(local), read_catalog(dist))


def test_detect_files_python_api_matches_detect_on_arrays(tmp_path, mf):
    q = quasar(3)
    paths = []
    for i in range(3):
        paths.append(write_4most(tmp_path / f"s{i}.fits", q.wave, q.flux[i], q.err[i],
                                 header={"OBJECT": f"s{i}"}))  # fmt: skip
    cat = mf.detect_files(paths)
    ref = mf.detect(q.flux, wave=q.wave, err=q.err, normalised=False)
    np.testing.assert_array_equal(cat.probability, ref.probability)
    np.testing.assert_array_equal(cat.wavelength, ref.wavelength)
    assert np.all(np.abs(cat.wavelength - LAMBDA2796) < 1.0)
    assert list(cat.columns["id"]) == ["s0", "s1", "s2"] and not cat.partial


def test_dask_missing_is_a_clear_usage_error(tmp_path, monkeypatch, capsys):
    d, _, _ = make_run(tmp_path, 1, corruptions=())
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    argv = ["detect", str(d), "-o", str(tmp_path / "c.fits"), "--dask", "local:2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "dask.distributed is not installed" in err and "pip install" in err and "\n" not in err


# A multi-absorber model (mgfast_multi): the catalogue's absorber table.
MULTI_THRESHOLD = 0.4


@pytest.fixture(scope="module")
def eager_multi(tmp_path_factory):
    """A random multi-absorber model whose logit bias is raised: a few hundred candidates per
    spectrum, some of them at or above MULTI_THRESHOLD, most below."""
    if not mgfast._core.built_with_onednn:
        pytest.skip("this mgfast was built without oneDNN")
    from mgfast.model import build_onnx, random_weights, save_model

    w = random_weights("mgfast_multi", seed=6)
    w[-2] = (w[-2][0], np.full(1, -2.0, np.float32))
    d = tmp_path_factory.mktemp("multi") / "eager"
    return save_model(d, build_onnx("mgfast_multi", w), "mgfast_multi", trained=False)


def make_multi_run(tmp: Path, n_good: int = 4):
    """make_run's files plus one NumPy file of three spectra (rows 0-2 of one file)."""
    d, bad, _ = make_run(tmp, n_good, corruptions=("junk",))
    q = quasar(3, seed=2)
    np.savez(d / "three.npz", wave=q.wave, flux=q.flux, err=q.err,
             id=np.array(["a", "b", "c"]), ra=np.array([1.0, 2.0, 3.0]),
             dec=np.array([-1.0, -2.0, -3.0]))  # fmt: skip
    return d, bad


def same_absorbers(a, b) -> None:
    assert a is not None and b is not None and list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def check_absorber_table(cat, threshold: float) -> None:
    a = cat.absorbers
    assert a is not None and list(a)[:6] == ["id", "file", "index", "ra", "dec", "spectrum"]
    s = a["spectrum"]
    assert len(s) > len(cat) and np.all(np.diff(s) >= 0)  # in catalogue order
    for k in ("id", "file", "index", "ra", "dec"):  # the source columns of its spectrum
        np.testing.assert_array_equal(a[k], cat.columns[k][s], err_msg=k)
    np.testing.assert_array_equal(a["detected"], a["probability"] >= threshold)
    n = np.bincount(s[a["detected"]], minlength=len(cat))
    np.testing.assert_array_equal(cat.columns["n_absorbers"], n)
    assert 0 < n.sum() < len(s)  # some candidates pass the threshold, not all
    # the per-spectrum summary: the most probable candidate
    best = np.zeros(len(cat), np.float32)
    np.maximum.at(best, s, a["probability"])
    np.testing.assert_array_equal(cat.probability, best)
    np.testing.assert_array_equal(cat.columns["detected"], n > 0)  # one story per spectrum


def test_multi_absorber_model_gives_an_absorber_table(tmp_path, capsys, eager_multi):
    d, bad = make_multi_run(tmp_path)
    out = tmp_path / "cat.fits"
    argv = ["--model", str(eager_multi), "--threshold", str(MULTI_THRESHOLD)]
    assert main(["detect", str(d), "-o", str(out), *argv]) == PARTIAL
    printed = capsys.readouterr().out
    cat = read_catalog(out)
    assert len(cat) == 7 and [e.file for e in cat.errors] == list(map(str, bad))
    check_absorber_table(cat, MULTI_THRESHOLD)
    three = cat.absorbers["file"] == str(d / "three.npz")
    assert set(cat.absorbers["index"][three]) == {0, 1, 2}
    assert set(cat.absorbers["id"][three]) == {"a", "b", "c"}
    n_abs, n_det = len(cat.absorbers["id"]), int(cat.columns["n_absorbers"].sum())
    assert f"wrote {n_abs:,} absorber candidates to the ABSORBERS HDU: {n_det:,} with" in printed
    hdr = fitsio.read_header(str(out), "ABSORBERS")
    assert hdr["NABS"] == n_abs and hdr["NABSDET"] == n_det
    top = fitsio.read_header(str(out), "CATALOG")
    assert top["NSPEC"] == 7
    assert top["THRESH"] == top["ABSTHRSH"] == MULTI_THRESHOLD
    assert cat.meta["absorber_threshold"] == MULTI_THRESHOLD
    # the Python API gives the same, and so do CSV and Parquet (read back through siblings)
    det = Detector(eager_multi, threshold=MULTI_THRESHOLD)
    api = det.detect_files(d)
    same_catalogue(cat, api)
    same_absorbers(cat.absorbers, api.absorbers)
    csv_out = tmp_path / "cat.csv"
    assert main(["detect", str(d), "-o", str(csv_out), *argv]) == PARTIAL
    assert str(tmp_path / "cat.absorbers.csv") in capsys.readouterr().out
    back = read_catalog(csv_out)
    same_catalogue(cat, back)
    same_absorbers(cat.absorbers, back.absorbers)
    assert back.meta["method"] == "network" and back.meta["threshold"] == MULTI_THRESHOLD
    pytest.importorskip("pyarrow")
    pq_out = tmp_path / "cat.parquet"
    assert main(["detect", str(d), "-o", str(pq_out), *argv]) == PARTIAL
    back = read_catalog(pq_out)
    same_catalogue(cat, back)
    same_absorbers(cat.absorbers, back.absorbers)


def test_single_absorber_runs_have_no_absorber_table(tmp_path, capsys, eager_multi):
    d, _ = make_multi_run(tmp_path, 2)
    out = tmp_path / "cat.csv"
    multi = ["--model", str(eager_multi), "--threshold", str(MULTI_THRESHOLD)]
    assert main(["detect", str(d), "-o", str(out), *multi]) == PARTIAL
    assert (tmp_path / "cat.absorbers.csv").exists() and "absorber" in capsys.readouterr().out
    # the same output by the matched filter: the earlier run's absorber table goes
    argv = ["detect", str(d), "-o", str(out), "--method", "matched-filter", "--overwrite"]
    assert main(argv) == PARTIAL
    assert "absorber candidates" not in capsys.readouterr().out
    assert not (tmp_path / "cat.absorbers.csv").exists()
    cat = read_catalog(out)
    assert cat.absorbers is None and "n_absorbers" not in cat.columns
    fits_out = tmp_path / "cat.fits"
    assert main(["detect", str(d), "-o", str(fits_out), "--method", "matched-filter"]) == PARTIAL
    with fitsio.FITS(str(fits_out)) as f:
        assert [h.get_extname() for h in f[1:]] == ["CATALOG", "ERRORS"]
    assert read_catalog(fits_out).absorbers is None
    same_catalogue(cat, read_catalog(fits_out))


class Stop(Exception):
    pass


def test_interrupted_multi_absorber_run_resumes_to_the_same_absorber_table(tmp_path, eager_multi):
    d, _ = make_multi_run(tmp_path, 6)
    det = Detector(eager_multi, threshold=MULTI_THRESHOLD)
    clean = det.detect_files(d)
    parts = tmp_path / "parts"

    def stop_after_three(done: int, total: int, spectra: int) -> None:
        if done >= 3:
            raise Stop

    with pytest.raises(Stop):
        det.detect_files(d, journal=parts, files_per_chunk=1, progress=stop_after_three)
    done = Journal(parts).load()
    assert len(done) == 3
    for _, (cols, _reason) in done.values():
        if cols is not None:  # each file's absorbers come back with it, indexing its own rows
            s = cols["absorbers/spectrum"]
            assert s.size and s.min() >= 0 and s.max() < len(cols["probability"])
    resumed = det.detect_files(d, journal=parts, resume=True, files_per_chunk=1)
    same_catalogue(clean, resumed)
    same_absorbers(clean.absorbers, resumed.absorbers)
    check_absorber_table(resumed, MULTI_THRESHOLD)


def test_sigkill_then_resume_gives_the_clean_absorber_table(tmp_path, capsys, eager_multi):
    d, _, _ = make_run(tmp_path, 100, corruptions=("junk", "empty"))
    args = ["--model", str(eager_multi), "--threshold", str(MULTI_THRESHOLD), "--threads", "1",
            "--files-per-chunk", "1"]  # fmt: skip
    clean = tmp_path / "clean.fits"
    assert main(["detect", str(d), "-o", str(clean), *args]) == PARTIAL
    out = tmp_path / "killed.fits"
    parts = tmp_path / "killed.fits.parts"
    kill_after_chunks([str(d), "-o", str(out), *args], parts, 10)
    assert 10 <= len(list(parts.glob("chunk-*.npz"))) < 102 and not out.exists()
    assert main(["detect", str(d), "-o", str(out), *args, "--resume"]) == PARTIAL
    a, b = read_catalog(clean), read_catalog(out)
    same_catalogue(a, b)
    same_absorbers(a.absorbers, b.absorbers)
    assert len(set(b.absorbers["id"])) == len(b) == 100  # each spectrum's absorbers once
    check_absorber_table(b, MULTI_THRESHOLD)


def test_dask_gives_the_local_absorber_table(tmp_path, capsys, eager_multi):
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    d, _ = make_multi_run(tmp_path, 5)
    local, dist = tmp_path / "local.fits", tmp_path / "dask.fits"
    args = ["--model", str(eager_multi), "--threshold", str(MULTI_THRESHOLD),
            "--files-per-chunk", "2"]  # fmt: skip
    assert main(["detect", str(d), "-o", str(local), *args]) == PARTIAL
    assert main(["detect", str(d), "-o", str(dist), *args, "--dask", "local:2"]) == PARTIAL
    a, b = read_catalog(local), read_catalog(dist)
    same_catalogue(a, b)
    same_absorbers(a.absorbers, b.absorbers)


# A chunk's files are searched together (detect_files._search_jobs).


def _units(d: Path) -> list[tuple[str, ...]]:
    return [(p,) for p in sorted(map(str, d.iterdir()))]


def test_a_chunk_searched_together_gives_what_each_file_gives_alone(tmp_path):
    from mgfast.detect_files import process_unit, process_units

    d, _ = make_multi_run(tmp_path, 6)
    det = Detector(model="multi")
    units = _units(d)
    together = process_units(det, units, None, False)
    alone = [out for u in units for out in process_unit(det, u, None, False)]
    assert len(together) == len(alone) == len(units)
    assert sum(c is None for c, _ in together) == 1  # the junk file
    for (a, ea), (b, eb) in zip(together, alone, strict=True):
        assert ea == eb
        if a is None:
            continue
        assert list(a) == list(b)
        for k in a:  # strings and counts exact; the numbers to float32 rounding
            if a[k].dtype.kind in "fc":
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
            else:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_failing_batch_is_searched_again_file_by_file(tmp_path):
    from mgfast.detect_files import process_units

    d, _, _ = make_run(tmp_path, 5, corruptions=())
    units = _units(d)
    poisoned = units[2][0]

    class FailsOnOne(Detector):  # a detector that cannot take the spectra of one file
        def detect(self, flux, *args, **kwargs):  # type: ignore[no-untyped-def]
            if np.any(np.all(np.asarray(flux) == self.bad, axis=-1)):
                raise ValueError("flux: this spectrum cannot be searched")
            return super().detect(flux, *args, **kwargs)

    det = FailsOnOne(method="matched-filter")
    det.bad = mgfast.io.read(poisoned)[0].flux
    out = process_units(det, units, None, False)
    assert [e is not None for _, e in out] == [u[0] == poisoned for u in units]
    assert "cannot be searched" in out[2][1]
    assert all(c is not None and len(c["probability"]) == 1 for c, e in out if e is None)


def test_files_are_searched_in_batches_of_bounded_size(tmp_path, monkeypatch):
    from mgfast.detect_files import process_units

    d, _, _ = make_run(tmp_path, 9, corruptions=())
    units = _units(d)

    calls: list[int] = []

    det = counting(calls)
    whole = process_units(det, units, None, False)
    assert calls == [9]  # one grid, one call
    calls.clear()
    monkeypatch.setattr(detect_files_module, "READ_AHEAD_PIXELS", 4 * mgfast.grid.N_PIX)
    bounded = process_units(det, units, None, False)
    assert calls == [4, 4, 1]  # searched whenever four spectra's pixels were read
    for (a, _), (b, _) in zip(whole, bounded, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_absorber_threshold_is_honoured_and_thresholds_are_checked(tmp_path, capsys, eager_multi):
    """--absorber-threshold sets the absorbers' threshold (and the rows', which summarise them),
    written to the header with its true value; thresholds outside [0, 1] are usage errors."""
    d, _ = make_multi_run(tmp_path, 2)
    p = Detector(eager_multi, threshold=MULTI_THRESHOLD).detect_files(d).absorbers["probability"]
    t = round(float(np.median(p[p >= MULTI_THRESHOLD])), 4)  # stricter: about half pass it
    out = tmp_path / "cat.fits"
    argv = ["--model", str(eager_multi), "--absorber-threshold", str(t)]
    assert main(["detect", str(d), "-o", str(out), *argv]) == PARTIAL
    cat = read_catalog(out)
    check_absorber_table(cat, t)
    assert fitsio.read_header(str(out), "CATALOG")["ABSTHRSH"] == t
    assert f"with probability >= {t:g}" in capsys.readouterr().out
    for bad in (["--threshold", "1.5"], ["--absorber-threshold", "-0.2"]):
        assert main(["detect", str(d), "-o", str(tmp_path / "x.fits"), *bad]) == 2
        assert "[0, 1]" in capsys.readouterr().err
    single = ["--absorber-threshold", "0.5"]  # the default model has no absorber list
    assert main(["detect", str(d), "-o", str(tmp_path / "y.fits"), *single]) == 2
    assert "one absorber per spectrum" in capsys.readouterr().err


def test_every_input_is_a_row_or_an_error_row_and_exit_codes(tmp_path, capsys):
    """Files in = files in rows + errors, whatever failed: unreadable, missing, a pattern that
    matches nothing; the exit code is 3 (partial); the exit codes are listed in --help."""
    d, _, _ = make_run(tmp_path, 3, corruptions=("junk",))
    missing = tmp_path / "gone.fits"
    pattern = str(tmp_path / "*.nothing")
    out = tmp_path / "c.fits"
    argv = ["detect", str(d), str(missing), pattern, "-o", str(out), "--method", "matched-filter"]
    assert main(argv) == PARTIAL
    cat = read_catalog(out)
    inputs = set(expand_paths([d])) | {str(missing), pattern}
    assert set(cat.columns["file"]) | {e.file for e in cat.errors} == inputs
    reasons = {e.file: e.reason for e in cat.errors}
    assert "no such file" in reasons[str(missing)]
    assert reasons[pattern] == "the pattern matches no file"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = capsys.readouterr().out
    for code in ("0 ", "3 ", "2 ", "130"):
        assert f"  {code}" in text


def test_z_em_table_reaches_every_spectrum(tmp_path, capsys):
    """mgfast detect --zem TABLE: each spectrum's z_em by id or file name; an absorber just in
    front of the quasar is ASSOCIATED, one behind it is not searched; others keep NaN."""
    from mgfast.flags import DetectionFlag
    from mgfast.testing.spectrum_files import Z_ABS

    q = quasar(3, seed=4)
    d = tmp_path / "data"
    d.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        write_4most(d / f"{name}.fits", q.wave, q.flux[i], q.err[i], header={"OBJECT": f"Q{i}"})
    table = tmp_path / "zem.csv"
    table.write_text(f"# quasar redshifts\nid,z_em\nQ0,{Z_ABS + 0.01}\nb.fits,{Z_ABS - 0.1}\n")
    out = tmp_path / "c.fits"
    argv = ["detect", str(d), "-o", str(out), "--zem", str(table), "--method", "matched-filter"]
    assert main(argv) == 0
    cat = read_catalog(out)
    z = cat.columns["z_em"]
    np.testing.assert_allclose(z[:2], [Z_ABS + 0.01, Z_ABS - 0.1])
    assert np.isnan(z[2])
    assert cat.detected[0] and cat.columns["flags"][0] & DetectionFlag.ASSOCIATED
    assert not cat.detected[1]  # the doublet lies where no MgII can be: not searched
    assert cat.detected[2] and not cat.columns["flags"][2] & DetectionFlag.ASSOCIATED
    bad = tmp_path / "bad.csv"
    bad.write_text("name,redshift\nQ0,1.0\n")
    assert main([*argv[:-3], str(bad), "--overwrite"]) == 2
    assert "needs a redshift column" in capsys.readouterr().err


def test_flux_unit_and_wavelength_unit_of_files(tmp_path):
    # ESO SDP files in W m^-2 nm^-1 (flux and error ~1e-19) used to come back ALL_MASKED with
    # probability 0 and exit code 0: now the same row as in erg s^-1 cm^-2 Å^-1. A file whose
    # wavelengths are in nm (no unit given) is an error row that says so; one that covers a single
    # arm is a row, flagged for the arms it misses.
    from mgfast.testing.spectrum_files import write_eso_sdp

    q = quasar(seed=5)
    cgs = write_eso_sdp(tmp_path / "cgs.fits", q.wave, q.flux[0], q.err[0])
    si = write_eso_sdp(tmp_path / "si.fits", q.wave, q.flux[0] * np.float32(1e-19),
                       q.err[0] * np.float32(1e-19))  # fmt: skip
    nm = tmp_path / "nm.npz"
    np.savez(nm, wave=q.wave / 10, flux=q.flux[0], err=q.err[0])
    red = q.wave > mgfast.grid.ARMS[2].lo - 10
    one_arm = tmp_path / "red.npz"
    np.savez(one_arm, wave=q.wave[red], flux=q.flux[0][red], err=q.err[0][red])
    cat = Detector().detect_files([cgs, si, nm, one_arm])
    assert [str(f) for f in cat.columns["file"]] == [str(cgs), str(si), str(one_arm)]
    flags = cat.columns["flags"]
    assert not np.any(flags[:2] & int(mgfast.SpectrumFlag.ALL_MASKED))
    assert cat.probability[0] > 0.5 and abs(cat.probability[1] - cat.probability[0]) < 1e-5
    missing = mgfast.SpectrumFlag.ARM_MISSING_BLUE | mgfast.SpectrumFlag.ARM_MISSING_GREEN
    assert flags[2] & int(missing) == int(missing)
    assert [e.file for e in cat.errors] == [str(nm)]
    assert "looks like nm" in cat.errors[0].reason and "multiply by 10" in cat.errors[0].reason


def _write_table_file(path: Path, n: int, seed: int = 5, bad_row: int | None = None) -> Path:
    """A 4MOST L1 file of n spectra, one per table row, on the grid (bad_row: that row's
    wavelengths reversed, which its reader refuses)."""
    sim = mgfast.simulate(n, seed=seed, with_absorber_fraction=0.5)
    data = np.zeros(n, [("WAVE", "f8", mgfast.grid.N_PIX), ("FLUX", "f4", mgfast.grid.N_PIX),
                        ("ERR_FLUX", "f4", mgfast.grid.N_PIX)])  # fmt: skip
    data["WAVE"], data["FLUX"], data["ERR_FLUX"] = mgfast.grid.wavelength(), sim.flux, sim.err
    if bad_row is not None:
        data["WAVE"][bad_row] = data["WAVE"][bad_row][::-1]
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(None, header={"INSTRUME": "4MOST", "OBJECT": "BIG", "SPEC_RES": 20000.0})
        f.write(data, extname="SPECTRUM")
    return path


def test_a_big_file_is_read_and_searched_a_chunk_at_a_time(tmp_path, monkeypatch):
    """A file of many spectra is read row by row (io.iter_read) and searched a chunk at a time:
    the same rows as reading it whole, with each Detector call no bigger than a chunk; a file
    that turns out corrupt after its first chunks is one error row, and the run goes on."""
    from mgfast.detect_files import process_units

    big = _write_table_file(tmp_path / "big.fits", 230)
    small = _write_table_file(tmp_path / "small.fits", 3, seed=6)
    bad = _write_table_file(tmp_path / "bad.fits", 230, seed=7, bad_row=180)
    units = [[str(small)], [str(big)], [str(bad)]]

    calls: list[int] = []

    det = counting(calls)
    whole = process_units(det, units, None, False)
    assert max(calls) == 233  # both good files in one call
    calls.clear()
    monkeypatch.setattr(file_read, "FILE_CHUNK_SPECTRA", 50)
    chunked = process_units(det, units, None, False)
    assert max(calls) <= 50 and sum(calls) >= 3 + 230
    for (a, ea), (b, eb) in zip(whole[:2], chunked[:2], strict=True):
        assert ea is None and eb is None
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert len(chunked[1][0]["probability"]) == 230
    assert chunked[1][0]["index"].tolist() == list(range(230))
    # the bad row is met after three chunks were searched: the file is one error row
    assert chunked[2][0] is None and "wavelengths do not increase" in chunked[2][1]
    assert whole[2][0] is None  # read whole, the bad file was an error row too


def test_iter_read_gives_a_files_spectra_in_chunks(tmp_path):
    path = _write_table_file(tmp_path / "t.fits", 23)
    whole = mgfast.io.read(path)
    chunks = list(mgfast.io.iter_read(path, chunk=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    flat = [s for c in chunks for s in c]
    assert [s.id for s in flat] == [s.id for s in whole]
    for a, b in zip(flat, whole, strict=True):
        np.testing.assert_array_equal(a.flux, b.flux)
    with pytest.raises(ValueError, match="chunk"):
        next(mgfast.io.iter_read(path, chunk=0))
    with pytest.raises(mgfast.io.ReadError, match="no such file"):
        next(mgfast.io.iter_read(tmp_path / "missing.fits"))


def test_a_run_killed_inside_a_big_file_resumes_inside_it(tmp_path, monkeypatch):
    """Each chunk of a big file is journalled as it is searched: a run killed inside the file
    resumes after its last journalled chunk (not from the file's start) and ends with the clean
    run's catalogue."""
    big = _write_table_file(tmp_path / "big.fits", 230)
    small = _write_table_file(tmp_path / "small.fits", 3, seed=6)
    monkeypatch.setattr(file_read, "FILE_CHUNK_SPECTRA", 50)
    paths = [str(small), str(big)]
    clean = Detector(method="matched-filter").detect_files(paths)

    calls: list[int] = []

    class Killed(BaseException):  # like a KeyboardInterrupt: nothing catches it
        pass

    class Dying(Detector):
        def detect(self, flux, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(len(np.atleast_2d(flux)))
            if len(calls) == 4:  # the small file, then three chunks of the big one
                raise Killed
            return super().detect(flux, *args, **kwargs)

    journal = tmp_path / "run.parts"
    with pytest.raises(Killed):
        Dying(method="matched-filter").detect_files(paths, journal=journal, files_per_chunk=1)
    assert len(list((journal / "parts").glob("*.npz"))) == 2  # chunks 1 and 2 of the big file
    calls.clear()

    resumed = counting(calls).detect_files(paths, journal=journal, resume=True, files_per_chunk=1)
    assert sum(calls) == 230 - 100  # only the rest of the big file was searched
    same_catalogue(clean, resumed)
    assert not list((journal / "parts").glob("*.npz"))  # dropped once the file was journalled


def test_z_em_from_the_files_headers_and_a_desi_redshift_catalogue(tmp_path):
    """z_em where a file carries it (Z_EM, ZEM, Z_QSO, ZQSO or REDSHIFT in an ESO SDP or 4MOST
    header), and from a DESI redshift catalogue (TARGETID, Z) given as --zem; the table wins."""
    from mgfast.testing.spectrum_files import Z_ABS, write_eso_sdp

    q = quasar(2, seed=4)
    a = write_4most(tmp_path / "a.fits", q.wave, q.flux[0], q.err[0],
                    header={"OBJECT": "Q0", "Z_EM": Z_ABS + 0.01})  # fmt: skip
    b = write_eso_sdp(tmp_path / "b.fits", q.wave, q.flux[1], q.err[1],
                      header={"OBJECT": "Q1", "REDSHIFT": Z_ABS - 0.1})  # fmt: skip
    assert mgfast.io.read(a)[0].meta["z_em"] == pytest.approx(Z_ABS + 0.01)
    assert mgfast.io.read(b)[0].meta["z_em"] == pytest.approx(Z_ABS - 0.1)
    cat = Detector(method="matched-filter").detect_files([a, b])
    np.testing.assert_allclose(cat.columns["z_em"], [Z_ABS + 0.01, Z_ABS - 0.1])
    assert cat.detected[0] and not cat.detected[1]  # behind the quasar: not searched
    # a DESI redshift catalogue (redrock REDSHIFTS: TARGETID, Z) as the --zem table
    red = tmp_path / "redrock.fits"
    t = np.zeros(2, [("TARGETID", "i8"), ("Z", "f8"), ("SPECTYPE", "S6")])
    t["TARGETID"], t["Z"] = [11, 12], [2.5, Z_ABS + 0.2]
    fitsio.write(str(red), t, extname="REDSHIFTS", clobber=True)
    from mgfast.cli import read_z_em_table

    assert read_z_em_table(str(red)) == {"11": 2.5, "12": pytest.approx(Z_ABS + 0.2)}
    c = Detector(method="matched-filter").detect_files([a], z_em={"Q0": 2.5})
    assert c.columns["z_em"][0] == 2.5  # the table over the header


def test_a_corrupt_file_leaves_cfitsio_clean_for_the_callers_own_fits_writing(tmp_path):
    """cfitsio keeps error messages on a process-wide stack; some corrupt files left bytes there
    that are not ASCII, and the caller's next fitsio call then failed with UnicodeDecodeError
    (4 of 3,000 of these fuzzed files did, the first at 497). Every read now empties it."""
    q = quasar()
    template = write_4most(tmp_path / "tpl.fits", q.wave, q.flux[0], q.err[0]).read_bytes()
    mf = Detector(method="matched-filter")
    rng = np.random.default_rng(1)
    p, w = tmp_path / "f.fits", tmp_path / "w.fits"
    for _ in range(600):
        buf = bytearray(template)
        kind = rng.integers(3)
        if kind in (0, 2):
            buf = buf[: rng.integers(0, len(buf))]
        if kind in (1, 2) and buf:
            for _ in range(rng.integers(1, 9)):
                at, chunk = rng.integers(0, len(buf)), rng.bytes(int(rng.integers(1, 17)))
                buf[at : at + len(chunk)] = chunk
        p.write_bytes(bytes(buf))
        check_outcome(p, process_file(mf, str(p), None, False))
        with fitsio.FITS(str(w), "rw", clobber=True) as f:  # raised UnicodeDecodeError before
            f.write(None, header=[{"name": "INSTRUME", "value": "4MOST"}])
            f.write(np.zeros(3, [("A", "f8")]))
