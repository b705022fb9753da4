"""The NumPy reference simulator (mgfast.testing.simulate_numpy) is the C++ simulator's physics: it
renders the C++ truth into the C++ spectra and solves the same EWs, so the benchmark is fair."""

from __future__ import annotations

import numpy as np

import mgfast
from mgfast.testing.simulate_numpy import (
    N_PIX,
    TransitionWindow,
    arm_of,
    render_absorbers,
    simulate_numpy,
    snr_profile,
    solve_dlogn,
)


def _cpp(n=48, seed=11):
    sim = mgfast.simulate(n, seed=seed, noise=False, with_absorber_fraction=0.85, return_clean=True)
    assert np.all(sim.truth.flags == 0)
    return sim


def test_reference_renders_the_cpp_truth_into_the_cpp_spectra():
    sim = _cpp()
    t = sim.truth
    assert 20 < t.has_absorber.sum() < len(t)  # absorbers, and rows without one
    clean, ew1, ew2 = render_absorbers(
        t.abs_z[:, 0], t.comp_logn[:, 0], t.comp_b[:, 0], t.comp_v[:, 0]
    )
    assert clean.shape == sim.clean.shape == (len(t), N_PIX)
    assert np.max(np.abs(clean.astype(np.float64) - sim.clean)) < 1e-4
    h = t.has_absorber
    np.testing.assert_allclose(ew1[h], t.ew2796[h], rtol=1e-3)
    np.testing.assert_allclose(ew2[h], t.ew2803[h], rtol=1e-3)
    assert np.all(np.isnan(ew1[~h]))


def test_reference_ew_solve_meets_the_requested_ew():
    # Start from the C++ components 0.7 dex too weak: the solve must find the C++ scale again.
    t = _cpp(seed=12).truth
    h = t.has_absorber
    z, target = t.abs_z[h, 0], t.abs_ew2796_requested[h, 0]
    logn = (t.comp_logn[h, 0] - np.float32(0.7)).astype(np.float32)
    arm = arm_of(2796.3543 * (1.0 + z))
    tr = TransitionWindow(0, z, arm, logn, t.comp_b[h, 0], t.comp_v[h, 0])
    dlogn, ok = solve_dlogn(tr, logn, target)
    assert np.all(ok)
    np.testing.assert_allclose(tr.rest_ew(logn, dlogn), target, rtol=1e-5)
    np.testing.assert_allclose(dlogn, 0.7, atol=1e-3)


def test_reference_noise_model_is_the_cpp_one():
    sim = _cpp(seed=13)
    profile = snr_profile()
    np.testing.assert_allclose(sim.err, 1.0 / (sim.truth.snr[:, None] * profile), rtol=1e-6)
    flux, err, truth = simulate_numpy(64, seed=1, with_absorber_fraction=0.5)
    np.testing.assert_allclose(err, 1.0 / (truth["snr"][:, None] * profile), rtol=1e-6)
    none = ~truth["has_absorber"]
    pulls = (flux[none] - 1.0) / err[none]
    assert abs(pulls.mean()) < 0.01 and abs(pulls.std() - 1.0) < 0.01


def test_reference_simulation_carries_its_truth():
    flux, _, truth = simulate_numpy(64, seed=2, with_absorber_fraction=0.8, noise=False)
    h = truth["has_absorber"]
    assert not truth["ew_not_reached"].any()
    np.testing.assert_allclose(truth["ew2796"][h], truth["ew2796_requested"][h], rtol=1e-5)
    # Rendering the drawn truth again gives the same spectra.
    clean, ew1, _ = render_absorbers(
        truth["z"], truth["comp_logn"], truth["comp_b"], truth["comp_v"]
    )
    np.testing.assert_array_equal(clean, flux)
    np.testing.assert_allclose(ew1[h], truth["ew2796"][h], rtol=1e-12)
    assert np.all(flux[~h] == 1.0)
