"""The C++ API against the Python API: examples/cpp (a consumer of the installed package's CMake
package, found through mgfast.get_cmake_dir()) is configured, built and run on simulated spectra
(always) and on the real development spectra (../shared/data/real_dev.npz, when present), and
its rows must equal Detector.detect's to the bit: every column, floats compared as bits (NaN
where Python has NaN)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mgfast
from mgfast import grid

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"
REAL = ROOT.parent / "shared" / "data" / "real_dev.npz"
MODEL = mgfast.detector.default_model_path()
MASKED_BY = tuple(f"masked_{r.name.lower()}" for r in mgfast.flags.MASK_REASONS)
COLUMNS = ("probability", "detected", "lambda2796", "z_abs", "z_em", "ew2796", "ew2796_err",
           "ew2803", "ew2803_err", "snr", "flags", "masked_fraction", *MASKED_BY)  # fmt: skip
FLOAT32 = {"probability", "ew2796", "ew2796_err", "ew2803", "ew2803_err", "snr",
           "masked_fraction", *MASKED_BY}  # fmt: skip


def _compiler() -> str | None:
    cxx = os.environ.get("CXX")
    return cxx if cxx and shutil.which(cxx) else (shutil.which("c++") or shutil.which("g++"))


@pytest.fixture(scope="module")
def detect_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/cpp built against the installed mgfast (skipped without cmake or a compiler)."""
    if shutil.which("cmake") is None or _compiler() is None:
        pytest.skip("cmake or a C++ compiler is missing")
    if not mgfast._core.built_with_onednn:
        pytest.skip("this mgfast was built without oneDNN: libmgfast has no CPU engine")
    build = tmp_path_factory.mktemp("example-build")
    cmd = ["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-Dmgfast_DIR={mgfast.get_cmake_dir()}",
           "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CXX_COMPILER={_compiler()}"]  # fmt: skip
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    for step in (cmd, ["cmake", "--build", str(build), "-j", "2"]):
        r = subprocess.run(step, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(step)}\n{r.stdout}\n{r.stderr}"
    return build / "detect"


def run_cpp(exe: Path, tmp: Path, flux: np.ndarray, *args: str, **arrays: np.ndarray | None
            ) -> dict[str, np.ndarray]:  # fmt: skip
    """The example's rows as columns (float32 columns as float32: its text keeps every bit)."""
    np.save(tmp / "flux.npy", np.ascontiguousarray(flux, np.float32))
    cmd = [str(exe), "--model", str(MODEL), "--flux", str(tmp / "flux.npy"), *args]
    for name, a in arrays.items():
        if a is None:
            continue
        dtype = np.float32 if name in ("err", "ivar") else np.float64
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(a, dtype))
        cmd += [f"--{name.replace('_', '-')}", str(tmp / f"{name}.npy")]
    out = tmp / "rows.csv"
    r = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    rows = [line.split(",") for line in lines[1:]]
    cols = {}
    for j, name in enumerate(COLUMNS):
        v = np.array([float(row[j]) for row in rows])
        cols[name] = (v.astype(np.float32) if name in FLOAT32 else
                      v.astype(bool) if name == "detected" else
                      v.astype(np.uint32) if name == "flags" else v)  # fmt: skip
    return cols


def assert_same(py: mgfast.Detections, cpp: dict[str, np.ndarray]) -> None:
    cols = py.columns()
    for name in COLUMNS:
        want = np.asarray(cols[name])
        got = cpp[name]
        assert got.shape == want.shape, name
        assert want.dtype == got.dtype, name
        # floats: equal values (the text keeps every bit), NaN where Python has NaN
        assert np.array_equal(want, got, equal_nan=want.dtype.kind == "f"), (
            f"{name}: Python {want}, C++ {got}"
        )


@pytest.fixture(scope="module")
def detector() -> mgfast.Detector:
    return mgfast.Detector(model=str(MODEL))


def test_cmake_dir_is_where_the_package_installed_it() -> None:
    d = Path(mgfast.get_cmake_dir())
    assert (d / "mgfastConfig.cmake").is_file() and (d / "mgfastTargets.cmake").is_file()
    r = subprocess.run([sys.executable, "-m", "mgfast", "--cmake-dir"], capture_output=True,
                       text=True, check=True)  # fmt: skip
    assert r.stdout.strip() == str(d)
    assert (Path(mgfast.cpp_api.get_include()) / "mgfast" / "engine.hpp").is_file()
    assert Path(mgfast.cpp_api.get_library()).is_file()


def test_simulated_spectra_match_python(detect_exe: Path, detector: mgfast.Detector,
                                        tmp_path: Path) -> None:  # fmt: skip
    sim = mgfast.simulate(48, seed=2024, snr=[3, 5, 10, 30])
    z_em = np.random.default_rng(1).uniform(0.5, 3.5, len(sim))
    z_em[::5] = np.nan  # unknown for some
    py = detector.detect(sim.flux, err=sim.err, z_em=z_em)
    assert py.detected.any() and not py.detected.all()  # both kinds of row are compared
    assert_same(py, run_cpp(detect_exe, tmp_path, sim.flux, err=sim.err, z_em=z_em))


def test_spectra_without_errors_match_python(detect_exe: Path, detector: mgfast.Detector,
                                             tmp_path: Path) -> None:  # fmt: skip
    """No errors: the network's noise channels and the EWs read the scatter's estimate."""
    sim = mgfast.simulate(24, seed=77, snr=[5, 20])
    py = detector.detect(sim.flux)
    assert_same(py, run_cpp(detect_exe, tmp_path, sim.flux))


def test_unnormalised_spectra_in_physical_units_match_python(
    detect_exe: Path, detector: mgfast.Detector, tmp_path: Path
) -> None:
    """A continuum fitted per arm, on flux in W m⁻² nm⁻¹-like units (errors ~1e-18: scaled by a
    power of two first), on wavelengths that are not the grid (rebinned onto it)."""
    sim = mgfast.simulate(16, seed=5, snr=[10, 30])
    lam = grid.wavelength()
    cont = 3e-17 * (1.0 + 0.3 * np.sin(lam / 300.0))
    flux = (sim.flux * cont).astype(np.float32)
    err = (sim.err * cont).astype(np.float32)
    keep = np.arange(5, grid.N_PIX - 7)  # a shorter wavelength array: the general path
    wave = lam[keep]
    py = detector.detect(flux[:, keep], wave, err[:, keep], normalised=False)
    cpp = run_cpp(detect_exe, tmp_path, flux[:, keep], "--not-normalised", wave=wave,
                  err=err[:, keep])  # fmt: skip
    assert_same(py, cpp)


def test_forest_continuum_and_mask_reasons_match_python(
    detect_exe: Path, detector: mgfast.Detector, tmp_path: Path
) -> None:
    """Quasars with a Lyα forest in the blue arm, unnormalised, z_em given: the continuum's
    forest treatment, the pixels masked beyond z_em and the masked fractions by reason."""
    from mgfast.simulate import Realism
    from mgfast.testing import quasar_continuum

    sim = mgfast.simulate(16, seed=31, snr=[5, 20], realism=Realism.sky(), z_em_range=(2.3, 3.6))
    z_em = sim.truth.z_em.copy()
    cont = np.stack([quasar_continuum(grid.wavelength(), z) for z in z_em]).astype(np.float32)
    flux, err = sim.flux * cont, sim.err * cont
    z_em[:3] = 1.2  # said to be nearer: their red arms lie beyond it (masked, BEYOND_ZEM)
    py = detector.detect(flux, grid.wavelength(), err, normalised=False, z_em=z_em)
    assert py.masked_by is not None
    beyond = list(mgfast.flags.MASK_REASONS).index(mgfast.PixelFlag.BEYOND_ZEM)
    assert np.all(py.masked_by[:3, beyond] > 0.2) and not py.masked_by[3:, beyond].any()
    cpp = run_cpp(detect_exe, tmp_path, flux, "--not-normalised", wave=grid.wavelength(),
                  err=err, z_em=z_em)  # fmt: skip
    assert_same(py, cpp)


def test_spectra_with_ivar_match_python(
    detect_exe: Path, detector: mgfast.Detector, tmp_path: Path
) -> None:
    """Inverse variances instead of errors, some of them 0 (masked pixels)."""
    sim = mgfast.simulate(16, seed=11, snr=[5, 30])
    ivar = (1.0 / sim.err.astype(np.float64) ** 2).astype(np.float32)
    ivar[:, 3000:3040] = 0.0
    py = detector.detect(sim.flux, ivar=ivar)
    assert_same(py, run_cpp(detect_exe, tmp_path, sim.flux, ivar=ivar))


def test_threshold_option_matches_python(detect_exe: Path, tmp_path: Path) -> None:
    sim = mgfast.simulate(16, seed=9, snr=[5])
    py = mgfast.Detector(model=str(MODEL), threshold=0.3).detect(sim.flux, err=sim.err)
    cpp = run_cpp(detect_exe, tmp_path, sim.flux, "--threshold", "0.3", err=sim.err)
    assert_same(py, cpp)


@pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} absent")
@pytest.mark.parametrize("normalised", [True, False])
def test_real_spectra_match_python(detect_exe: Path, detector: mgfast.Detector, tmp_path: Path,
                                   normalised: bool) -> None:  # fmt: skip
    d = np.load(REAL)
    flux, err = d["flux"].copy(), d["err"].copy()
    bad = ~np.isfinite(flux) | ~np.isfinite(err) | (err <= 0)
    flux[bad], err[bad] = 0.0, 0.0
    z_em = d["z_em"].astype(np.float64)
    py = detector.detect(flux, d["wave"], err, z_em=z_em, normalised=normalised)
    args = () if normalised else ("--not-normalised",)
    cpp = run_cpp(detect_exe, tmp_path, flux, *args, wave=d["wave"], err=err, z_em=z_em)
    assert_same(py, cpp)


@pytest.mark.skipif(not mgfast._core.built_with_onednn, reason="built without oneDNN")
def test_python_engine_goes_through_the_contract() -> None:
    """The bound CPU engine reports the engine contract's inputs, precision and device."""
    b = mgfast.CpuBackend(MODEL, threads=1)
    assert b._net.input_features == list(b.model.input_channels)
    assert b._net.in_channels == len(b.model.input_channels)
    assert (b._net.precision, b._net.device_string) == ("fp32", "cpu")
    assert not b._net.map_output and b._net.n_in == grid.N_PIX
