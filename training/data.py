"""Training data generated on the fly by mgfast's simulator: every batch is new spectra (fresh
absorbers and noise), so the network never sees the same spectrum twice; validation and test
sets are fixed (seed, index range) and can be regenerated anywhere."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import mgfast
from mgfast import grid
from mgfast.simulate import Realism, Simulation

N_CELLS = -(-grid.N_PIX // 4)  # 1579 cells of 4 pixels for the FCN's heatmap


@dataclass(frozen=True)
class DataConfig:
    seed: int = 2026
    absorber_fraction: float = 0.8  # the paper's training set: 80 % with an absorber
    realistic_fraction: float = 0.5  # share of batches drawn with Realism.survey()
    snr: tuple[float, ...] = (3, 5, 10, 20, 30, 40, 50)  # the paper's SNR values


def model_input(sim: Simulation) -> np.ndarray:
    """What the network reads: the grid fast path of preprocessing (bad pixels filled with 1)."""
    return mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True, threads=1).flux


def fcn_targets(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """Class per spectrum (the cell holding λ2796, or N_CELLS for none) and [cell, offset]."""
    t = sim.truth
    pix = grid.pixel_of(np.where(t.has_absorber, t.lambda2796, 0.0))
    has = t.has_absorber & np.isfinite(pix)
    cell = np.where(has, np.floor(np.nan_to_num(pix) / 4.0), N_CELLS).astype(np.int32)
    offset = np.where(has, np.nan_to_num(pix) - 4.0 * cell, 0.0).astype(np.float32)
    cls = np.minimum(cell, N_CELLS)
    return cls, np.stack([np.where(has, cell, -1).astype(np.float32), offset], axis=1)


def paper_targets(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    t = sim.truth
    return t.has_absorber.astype(np.float32)[:, None], t.lambda2796.astype(np.float32)[:, None]


def batches(
    cfg: DataConfig, batch_size: int, start_step: int, arch: str, prefetch: int = 4
) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Endless training batches from step ``start_step`` (resumable: batch k is always the same),
    produced in a background thread while the network trains."""
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    targets = fcn_targets if arch == "mgfast_fcn" else paper_targets

    def produce() -> None:
        step = start_step
        while True:
            realistic = (step * 7919) % 100 < 100 * cfg.realistic_fraction
            sim = mgfast.simulate(
                batch_size,
                seed=cfg.seed,
                start=step * batch_size,
                snr=cfg.snr,
                with_absorber_fraction=cfg.absorber_fraction,
                realism=Realism.survey() if realistic else None,
                threads=1,
            )
            q.put((model_input(sim), targets(sim)))
            step += 1

    threading.Thread(target=produce, daemon=True).start()
    while True:
        yield q.get()


def fixed_set(
    n_per_snr: int,
    seed: int,
    realistic: bool = False,
    absorber_fraction: float = 0.5,
    snr: tuple[float, ...] = (3, 5, 10, 20, 30, 40, 50),
) -> Simulation:
    """A fixed evaluation set: n_per_snr spectra at each SNR, 50/50 with/without absorber."""
    sims = [
        mgfast.simulate(
            n_per_snr,
            seed=seed + 1000 * i,
            snr=s,
            with_absorber_fraction=absorber_fraction,
            realism=Realism.survey() if realistic else None,
        )
        for i, s in enumerate(snr)
    ]
    return _concat(sims)


def _concat(sims: list[Simulation]) -> Simulation:
    import dataclasses

    truth = {
        f.name: np.concatenate([getattr(s.truth, f.name) for s in sims])
        for f in dataclasses.fields(sims[0].truth)
    }
    return Simulation(
        np.concatenate([s.flux for s in sims]),
        np.concatenate([s.err for s in sims]),
        type(sims[0].truth)(**truth),
        sims[0].seed,
    )
