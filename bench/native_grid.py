"""Spectra as files give them, for the benchmarks: simulated survey spectra moved onto a
native-like grid (public API only, so that any mgfast version can run it)."""

from __future__ import annotations

import numpy as np

from mgfast import grid
from mgfast.simulate import Realism, simulate


def native_grid(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n simulated unnormalised survey spectra moved onto a native-like grid: per arm, linear in
    λ with the grid's mean pixel width, starting a third of a pixel off (interpolated before any
    clock starts); returns wave (n_native,), flux, err (n, n_native) and z_em (n,)."""
    realism = Realism(**{**Realism.survey().__dict__, "unnormalised": True})
    sim = simulate(n, seed=seed, with_absorber_fraction=0.5, realism=realism)
    w = grid.wavelength()
    waves = []
    for arm in grid.ARMS:
        wa = w[arm.start : arm.stop]
        step = (wa[-1] - wa[0]) / (len(wa) - 1)
        waves.append(wa[0] + step / 3 + step * np.arange(len(wa) - 1))
    wave = np.concatenate(waves)
    flux = np.empty((n, wave.size), np.float32)
    err = np.empty_like(flux)
    for i in range(n):
        flux[i] = np.interp(wave, w, sim.flux[i])
        err[i] = np.interp(wave, w, sim.err[i])
    return wave, flux, err, np.asarray(sim.truth.z_em, np.float64)
