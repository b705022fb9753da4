"""The network's input channels (issue 16): mgfast.model.input_features (one definition for
training and the engines), the training data that uses it, and the Keras models that read it,
including the warm start of a multi-channel model from a one-channel run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import mgfast
import mgfast.model as mm
from mgfast import grid

TRAINING = Path(__file__).resolve().parents[1] / "training"
ALL = ("flux", "whitened", "log_snr")


def _pre(n: int = 6, seed: int = 3):
    sim = mgfast.simulate(n, seed=seed, snr=(3, 10, 50), with_absorber_fraction=0.8)
    err = sim.err.copy()
    err[0, 100:180] = np.inf  # masked stretches: ivar 0
    err[1, :] = np.nan  # a spectrum without usable errors
    return mgfast.preprocess(sim.flux, None, err, allow_empty=True)


def test_features_follow_their_definition():
    pre = _pre()
    x = mm.input_features(pre.flux, pre.ivar, ALL)
    assert x.shape == (6, 3, grid.N_PIX) and x.dtype == np.float32
    f = pre.flux.astype(np.float64)
    s = np.sqrt(pre.ivar.astype(np.float64))
    np.testing.assert_array_equal(x[:, 0], pre.flux)
    np.testing.assert_allclose(x[:, 1], np.clip((1 - f) * s, -8, 8) / 4, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(x[:, 2], np.log10(1 + s) / 2, rtol=1e-6, atol=1e-7)
    masked = pre.ivar == 0
    assert masked[0, 100:180].all() and masked[1].all()
    assert (x[:, 1][masked] == 0).all() and (x[:, 2][masked] == 0).all()
    assert np.abs(x[:, 1]).max() <= 2.0 and x[:, 2].min() >= 0


def test_layouts_subsets_and_one_spectrum():
    pre = _pre()
    ncl = mm.input_features(pre.flux, pre.ivar, ALL)
    nlc = mm.input_features(pre.flux, pre.ivar, ALL, channels_last=True)
    assert nlc.shape == (6, grid.N_PIX, 3) and nlc.flags.c_contiguous
    np.testing.assert_array_equal(nlc, np.moveaxis(ncl, 1, 2))
    two = mm.input_features(pre.flux, pre.ivar, "flux,log_snr")
    np.testing.assert_array_equal(two, ncl[:, [0, 2]])
    one = mm.input_features(pre.flux[2], pre.ivar[2], ALL)
    np.testing.assert_array_equal(one, ncl[2])
    none = mm.input_features(pre.flux, None, ALL)
    assert (none[:, 1:] == 0).all()
    np.testing.assert_array_equal(mm.input_features(pre.flux, pre.ivar)[:, 0], pre.flux)


def test_the_function_the_package_uses_is_the_numpy_reference():
    """The bound C++ function (src/core/net/features.hpp) gives the NumPy reference's numbers."""
    pre = _pre(20, seed=9)
    rng = np.random.default_rng(0)
    flux = np.concatenate([pre.flux, rng.normal(1, 3, (4, grid.N_PIX)).astype(np.float32)])
    ivar = np.concatenate([pre.ivar, rng.exponential(1e4, (4, grid.N_PIX)).astype(np.float32)])
    ivar[-1, ::3] = 0
    ivar[-2, ::5] = np.inf  # not a usable weight: read as masked
    want = mm.input_features_numpy(flux, ivar, ALL)
    got = mm.input_features(flux, ivar, ALL, threads=2)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "bad", [["whitened", "flux"], ["flux", "flux"], ["flux", "snr"], [], "flux,,nope"]
)
def test_bad_channel_lists_are_refused(bad):
    with pytest.raises(ValueError, match="input channels"):
        mm.check_channels(bad)


# --- training/ -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("keras")
    from mgfast_train import data, models

    return data, models


def test_training_batches_carry_the_channels(training):
    data, _ = training
    cfg = data.DataConfig(seed=5)
    flux_only = data.batches(cfg, 4, 2, "mgfast_fcn")
    three = data.batches(cfg, 4, 2, "mgfast_fcn", channels=ALL, producers=2, group=2)
    try:
        for _ in range(3):
            (xa, ya), (xb, yb) = next(flux_only), next(three)
            assert xa.shape == (4, grid.N_PIX) and xb.shape == (4, grid.N_PIX, 3)
            np.testing.assert_array_equal(xb[..., 0], xa)
            for a, b in zip(ya, yb, strict=True):
                np.testing.assert_array_equal(a, b)
    finally:
        flux_only.close()
        three.close()
    sim = mgfast.simulate(3, seed=1)
    pre = mgfast.preprocess(sim.flux, None, sim.err)
    np.testing.assert_array_equal(
        data.model_input(sim, channels=ALL),
        mm.input_features(pre.flux, pre.ivar, ALL, channels_last=True),
    )


@pytest.mark.parametrize("arch", ["mgfast_fcn", "mgfast_multi", "mgfast_joint"])
def test_warm_start_widens_a_one_channel_model_to_the_same_function(training, arch):
    """--init from a one-channel run: the first convolution's kernel for flux, zeros for the new
    channels; the C-channel model then computes what the one-channel one did."""
    data, models = training
    import keras

    keras.utils.set_random_seed(4)
    one = models.ARCHITECTURES[arch]()
    wide = models.ARCHITECTURES[arch](channels=ALL)
    assert models.input_channels(one) == ("flux",) and models.input_channels(wide) == ALL
    first = models.trunk_convs(wide)[0]
    assert first.kernel.shape == (7, 3, 16)
    models.set_weights_widening(wide, one.get_weights())
    k = np.asarray(first.kernel)
    np.testing.assert_array_equal(k[:, :1], np.asarray(models.trunk_convs(one)[0].kernel))
    assert (k[:, 1:] == 0).all()
    sim = data.fixed_set(2, seed=11, realistic=True)
    a = one.predict(data.model_input(sim), verbose=0)
    b = wide.predict(data.model_input(sim, channels=ALL), verbose=0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)  # equal to the bit on JAX CPU
    with pytest.raises(ValueError, match="cannot start"):
        models.set_weights_widening(one, wide.get_weights())  # never narrower


def test_widened_models_save_load_and_split(training, tmp_path):
    _, models = training
    import keras

    joint = models.mgfast_joint(channels=("flux", "whitened"))
    path = tmp_path / "joint.keras"
    joint.save(path)
    back = keras.saving.load_model(path, compile=False)
    assert models.input_channels(back) == ("flux", "whitened")
    fcn, multi = models.split_joint(back)
    assert models.input_channels(fcn) == models.input_channels(multi) == ("flux", "whitened")
    again = models.join(fcn, multi)
    for a, b in zip(again.get_weights(), joint.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="flux only"):
        models.bycycle2023(channels=ALL)


def test_train_py_warm_starts_a_noise_run_from_a_one_channel_run(training, tmp_path):
    """What the maintainer runs: train.py --input-channels ... --init <one-channel run>, which
    records the channels and resumes only with them."""
    import json
    import subprocess

    env = {**os.environ, "KERAS_BACKEND": "jax"}
    tiny = ["--steps", "1", "--batch", "4", "--val-per-snr", "2", "--arch", "mgfast_fcn"]

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(TRAINING / "train.py"), *tiny, *args],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    one, noise = tmp_path / "one", tmp_path / "noise"
    r = train("--out", str(one))
    assert r.returncode == 0, r.stderr[-2000:]
    r = train("--out", str(noise), "--input-channels", ",".join(ALL),
              "--init", str(one / "final.keras"))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "new channels start at zero" in r.stdout
    assert json.loads((noise / "config.json").read_text())["input_channels"] == ",".join(ALL)
    r = train("--out", str(noise), "--steps", "2")  # the same run, without its channels
    assert r.returncode != 0 and "input channels" in (r.stdout + r.stderr)
    r = train("--out", str(tmp_path / "bad"), "--input-channels", "flux,snr")
    assert r.returncode != 0 and "unknown" in (r.stdout + r.stderr)
