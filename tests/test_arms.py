"""Per-arm 4MOST files of one object combined into one spectrum before detection (docs/io.md,
"Per-arm files"): one row per object, errors per bad file, deterministic order, resume and dask
give the uninterrupted catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fitsio")
pytest.importorskip("astropy")

import mgfast
from mgfast import grid
from mgfast.catalog import read_catalog
from mgfast.cli import PARTIAL, main
from mgfast.detect_files import Journal
from mgfast.detector import Detector
from mgfast.flags import SpectrumFlag
from mgfast.io import combine_arms, group_arm_files, object_key, read
from mgfast.testing.spectrum_files import LAMBDA2796, quasar, write_4most, write_4most_arms

ARMS_MISSING = int(
    SpectrumFlag.ARM_MISSING_BLUE | SpectrumFlag.ARM_MISSING_GREEN | SpectrumFlag.ARM_MISSING_RED
)


@pytest.fixture(scope="module")
def mf():
    return Detector(method="matched-filter", threads=1)


def in_arms(wave: np.ndarray) -> np.ndarray:
    return np.any([(wave >= a.lo) & (wave <= a.hi) for a in grid.ARMS], axis=0)


def same_catalogue(a, b) -> None:
    assert list(a.columns) == list(b.columns)
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k], err_msg=k)
    assert [(e.file, e.reason) for e in a.errors] == [(e.file, e.reason) for e in b.errors]


def test_three_arm_files_give_one_row_with_the_absorber_in_the_green_arm(tmp_path, mf):
    q = quasar()
    files = write_4most_arms(tmp_path, "q", q.wave, q.flux[0], q.err[0],
                             header={"OBJ_UID": 1001, "OBJECT": "QSO 1"})  # fmt: skip
    cat = mf.detect_files(tmp_path)
    assert len(cat) == 1 and not cat.partial
    assert cat.columns["file"][0] == ";".join(map(str, files))  # blue;green;red
    assert cat.columns["id"][0] == "QSO 1" and cat.columns["index"][0] == 0
    assert cat.columns["flags"][0] & ARMS_MISSING == 0  # all three arms seen
    assert cat.detected[0] and abs(cat.wavelength[0] - LAMBDA2796) < 1.0
    # the same as detection on the arms' pixels at once
    keep = in_arms(q.wave)
    ref = mf.detect(q.flux[:, keep], wave=q.wave[keep], err=q.err[:, keep], normalised=False)
    np.testing.assert_array_equal(cat.probability, ref.probability)
    np.testing.assert_array_equal(cat.wavelength, ref.wavelength)
    # the network finds it too
    net = Detector(threads=1).detect_files(files[::-1])  # input order does not matter
    assert net.detected[0] and abs(net.wavelength[0] - LAMBDA2796) < 1.0
    assert net.columns["file"][0] == cat.columns["file"][0]
    # merging off: a row per file, each missing two arms, the absorber only in the green one
    apart = mf.detect_files(tmp_path, merge_arms=False)
    assert list(apart.columns["file"]) == list(map(str, files))
    missing = [bin(int(f) & ARMS_MISSING).count("1") for f in apart.columns["flags"]]
    assert missing == [2, 2, 2]
    assert apart.detected[1] and abs(apart.wavelength[1] - LAMBDA2796) < 1.0


def test_combine_arms_concatenates_in_wavelength_order(tmp_path):
    q = quasar()
    files = write_4most_arms(tmp_path, "q", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 7})
    spectra = [read(f)[0] for f in files]
    s, order = combine_arms(spectra[::-1], list(map(str, files[::-1])))
    assert order == [2, 1, 0]
    keep = in_arms(q.wave)
    good = ~s.mask  # all but two masked NaN pixels in each of the two gaps
    assert s.mask.sum() == 4 and np.all(np.isnan(s.flux[s.mask]))
    assert np.all(np.diff(s.wave) > 0)
    np.testing.assert_array_equal(s.wave[good], q.wave[keep])
    np.testing.assert_array_equal(s.flux[good], q.flux[0][keep])
    np.testing.assert_array_equal(s.err[good], q.err[0][keep])
    assert s.meta["arms"] == ("blue", "green", "red") and s.meta["arm"] == "joined"
    assert s.meta["files"] == tuple(map(str, files))


def test_two_objects_interleaved_give_two_rows_in_input_order(tmp_path, mf):
    qa, qb = quasar(seed=1), quasar(seed=2)
    fa = write_4most_arms(tmp_path, "a", qa.wave, qa.flux[0], qa.err[0], arm_keyword=False,
                          header={"OBJECT": "object a"}, pattern="{arm}_{stem}.fits")  # fmt: skip
    fb = write_4most_arms(tmp_path, "b", qb.wave, qb.flux[0], qb.err[0], arm_keyword=False,
                          header={"OBJ_UID": 22}, pattern="{arm}_{stem}.fits")  # fmt: skip
    # a joined file and a NumPy file in the same directory are searched as ever
    joined = write_4most(tmp_path / "c_joined.fits", qa.wave, qa.flux[0], qa.err[0],
                         header={"OBJECT": "object c"})  # fmt: skip
    np.savez(tmp_path / "d.npz", wave=qb.wave, flux=qb.flux[0], err=qb.err[0])
    files = sorted(map(str, [*fa, *fb, joined, tmp_path / "d.npz"]))
    assert files[:2] == [str(fa[0]), str(fb[0])]  # blue_a, blue_b, c_joined, d.npz, green_a...
    assert group_arm_files(files) == [tuple(map(str, fa)), tuple(map(str, fb)), (str(joined),),
                                      (str(tmp_path / "d.npz"),)]  # fmt: skip
    cat = mf.detect_files(tmp_path)
    assert list(cat.columns["id"]) == ["object a", "4MOST-QSO-1", "object c", "d"]
    assert list(cat.columns["file"][:2]) == [";".join(map(str, fa)), ";".join(map(str, fb))]
    assert np.all(cat.columns["flags"][:3] & ARMS_MISSING == 0)
    assert np.all(cat.detected) and np.all(np.abs(cat.wavelength - LAMBDA2796) < 1.0)
    again = mf.detect_files(tmp_path)
    same_catalogue(cat, again)
    alone = mf.detect_files([joined, tmp_path / "d.npz"])  # exactly as without per-arm files
    for k in alone.columns:
        np.testing.assert_array_equal(cat.columns[k][2:], alone.columns[k], err_msg=k)
    # given in another order, the objects come in that order
    rev = mf.detect_files([*fb, *fa])
    assert list(rev.columns["id"]) == ["4MOST-QSO-1", "object a"]
    np.testing.assert_array_equal(rev.probability, cat.probability[[1, 0]])


def test_object_keys_from_the_headers(tmp_path):
    q = quasar()
    w, f, e = q.wave[:3000], q.flux[0][:3000], q.err[0][:3000]
    p = write_4most(tmp_path / "a.fits", w, f, e, header={"OBJ_UID": 5, "OBJ_NAME": "n"})
    assert object_key(p) == "OBJ_UID=5"
    p = write_4most(tmp_path / "b.fits", w, f, e, header={"OBJ_NAME": "n", "ARM": "blue"})
    assert object_key(p) == "OBJ_NAME=n" and object_key(p, "eso-sdp") is None
    p = write_4most(tmp_path / "c.fits", w, f, e, header={"ARM": "JOINED"})
    assert object_key(p) is None
    from mgfast.testing.spectrum_files import write_eso_sdp

    assert object_key(write_eso_sdp(tmp_path / "d.fits", w, f, e)) is None
    (tmp_path / "e.fits").write_bytes(b"junk" * 100)
    assert object_key(tmp_path / "e.fits") is None and object_key(tmp_path / "f.npz") is None


def test_joined_files_of_an_object_with_arm_files_stay_alone(tmp_path, mf):
    q = quasar()
    arms = write_4most_arms(tmp_path, "q", q.wave, q.flux[0], q.err[0], arm_keyword=False,
                            header={"OBJECT": "same"})  # fmt: skip
    joined = write_4most(tmp_path / "q_all.fits", q.wave, q.flux[0], q.err[0],
                         header={"OBJECT": "same"})  # fmt: skip
    cut = tmp_path / "q_cut.fits"  # a truncated copy: its headers read, its data do not
    cut.write_bytes(joined.read_bytes()[: len(joined.read_bytes()) * 3 // 4])
    files = list(map(str, [*arms, joined, cut]))
    assert group_arm_files(files) == [tuple(files[:3]), (files[3],), (files[4],)]
    assert group_arm_files(files[3:]) == [(files[3],), (files[4],)]
    cat = mf.detect_files(files)
    assert list(cat.columns["file"]) == [";".join(files[:3]), files[3]]
    assert [e.file for e in cat.errors] == [files[4]]
    np.testing.assert_array_equal(cat.probability[1], mf.detect_files([joined]).probability[0])


def test_two_files_of_one_arm_are_an_error_naming_both(tmp_path, mf):
    q = quasar()
    files = write_4most_arms(tmp_path, "q", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 9})
    dup = tmp_path / "q_green_again.fits"
    dup.write_bytes(files[1].read_bytes())
    other = write_4most(tmp_path / "z.fits", q.wave, q.flux[0], q.err[0],
                        header={"OBJECT": "other"})  # fmt: skip
    cat = mf.detect_files(tmp_path)
    assert list(cat.columns["file"]) == [str(other)]  # no row for the object
    # every file of the object is an error row under its own name (none vanishes)
    assert sorted(e.file for e in cat.errors) == sorted(map(str, [*files, dup]))
    for err in cat.errors:
        assert str(files[1]) in err.reason and str(dup) in err.reason and "green arm" in err.reason
        assert err.reason.startswith(str(files[1])) or err.reason.startswith(str(files[0]))


def test_two_epochs_as_six_arm_files_account_for_every_file(tmp_path, mf, capsys):
    """Two epochs of one object as six per-arm files: every file is a row or an error row,
    and the CLI says partial (files in = rows' files + errors)."""
    q = quasar()
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2").mkdir()
    a = write_4most_arms(tmp_path / "e1", "q", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 5})
    b = write_4most_arms(tmp_path / "e2", "q", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 5})
    out = tmp_path / "c.fits"
    assert main(["detect", str(tmp_path / "e1"), str(tmp_path / "e2"), "-o", str(out),
                 "--method", "matched-filter"]) == PARTIAL  # fmt: skip
    cat = read_catalog(out)
    in_rows = {f for row in cat.columns["file"] for f in row.split(";")}
    in_errors = {e.file for e in cat.errors}
    assert in_rows | in_errors == set(map(str, a + b))
    assert "wrote 0 spectra from 0 files" in capsys.readouterr().out


def test_a_corrupt_arm_file_is_an_error_and_the_object_keeps_its_row(tmp_path, mf, capsys):
    q = quasar()
    files = write_4most_arms(tmp_path, "q", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 3})
    # the green arm's headers are fine but its wavelengths are NaN: read fails within the group
    green = files[1]
    bad = read(green)[0].wave.size
    write_4most(green, np.full(bad, np.nan), np.ones(bad), np.ones(bad),
                header={"OBJ_UID": 3, "ARM": "GREEN"})  # fmt: skip
    cat = mf.detect_files(tmp_path)
    assert len(cat) == 1 and [e.file for e in cat.errors] == [str(green)]
    assert "NaN" in cat.errors[0].reason
    assert cat.columns["file"][0] == f"{files[0]};{files[2]}"
    flags = int(cat.columns["flags"][0])
    assert flags & ARMS_MISSING == int(SpectrumFlag.ARM_MISSING_GREEN)
    # a file whose headers cannot be read is not grouped: an error of its own, as ever
    green.write_bytes(b"\0junk" * 500)
    out = tmp_path / "cat.fits"
    assert main(["detect", str(tmp_path), "-o", str(out), "--method", "matched-filter"]) == PARTIAL
    back = read_catalog(out)
    assert len(back) == 1 and [e.file for e in back.errors] == [str(green)]
    assert back.columns["file"][0] == f"{files[0]};{files[2]}"
    assert f"mgfast detect: {green}: " in capsys.readouterr().err


def make_arm_run(tmp: Path, n_objects: int = 4) -> Path:
    """n_objects objects in three per-arm files each, interleaved by name, plus a joined file,
    a junk file and an object with a corrupt green arm."""
    d = tmp / "arms"
    d.mkdir()
    for i in range(n_objects):
        q = quasar(seed=10 + i, snr=20)
        write_4most_arms(d, f"o{i}", q.wave, q.flux[0], q.err[0], arm_keyword=i % 2 == 0,
                         header={"OBJ_UID": 100 + i}, pattern="{arm}_{stem}.fits")  # fmt: skip
    q = quasar(seed=99)
    write_4most(d / "joined.fits", q.wave, q.flux[0], q.err[0], header={"OBJECT": "j"})
    (d / "green_junk.fits").write_bytes(b"junk" * 300)
    files = write_4most_arms(d, "x", q.wave, q.flux[0], q.err[0], header={"OBJ_UID": 777},
                             pattern="{arm}_{stem}.fits")  # fmt: skip
    n = read(files[1])[0].wave.size
    write_4most(
        files[1],
        np.linspace(6000, 5000, n),
        np.ones(n),
        np.ones(n),
        header={"OBJ_UID": 777, "ARM": "GREEN"},
    )  # decreasing wavelengths
    return d


class Stop(Exception):
    pass


def test_interrupted_run_with_arm_groups_resumes_to_the_clean_catalogue(tmp_path, mf):
    d = make_arm_run(tmp_path)
    clean = mf.detect_files(d)
    assert len(clean) == 6 and len(clean.errors) == 2  # 4 + x + joined; junk, x's green
    assert sum(";" in f for f in clean.columns["file"]) == 5
    parts = tmp_path / "parts"
    seen: list[int] = []

    def stop_after_two_chunks(done: int, total: int, spectra: int) -> None:
        seen.append(done)
        if len(seen) == 3:  # the initial call, then two chunks
            raise Stop

    with pytest.raises(Stop):
        mf.detect_files(d, journal=parts, files_per_chunk=1, progress=stop_after_two_chunks)
    assert seen == [0, 3, 6]  # a chunk is a whole object: its three files
    done = Journal(parts).load()
    assert len(done) == 6
    rows = [len(cols["probability"]) for _, (cols, _r) in done.values()]
    assert sorted(rows) == [0, 0, 0, 0, 1, 1]  # an object's row is on its first file
    resumed = mf.detect_files(d, journal=parts, resume=True, files_per_chunk=1)
    same_catalogue(clean, resumed)
    # a journal of the run without merging is not resumed with it
    with pytest.raises(ValueError, match="merge_arms"):
        mf.detect_files(d, journal=parts, resume=True, merge_arms=False)


def test_dask_with_arm_groups_gives_the_local_catalogue(tmp_path, capsys):
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    d = make_arm_run(tmp_path, 3)
    local, dist = tmp_path / "local.fits", tmp_path / "dask.fits"
    args = ["--method", "matched-filter", "--files-per-chunk", "2"]
    assert main(["detect", str(d), "-o", str(local), *args]) == PARTIAL
    assert main(["detect", str(d), "-o", str(dist), *args, "--dask", "local:2"]) == PARTIAL
    a, b = read_catalog(local), read_catalog(dist)
    same_catalogue(a, b)
    assert len(a) == 5 and sum(";" in f for f in a.columns["file"]) == 4
    apart = tmp_path / "apart.fits"
    assert main(["detect", str(d), "-o", str(apart), *args, "--no-merge-arms"]) == PARTIAL
    assert len(read_catalog(apart)) == 3 * 3 + 1 + 2


def test_files_that_are_not_4most_stay_alone():
    assert mgfast.io.group_arm_files(["a.npz", "b.txt"]) == [("a.npz",), ("b.txt",)]
