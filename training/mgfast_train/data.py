"""Training data generated on the fly by mgfast's simulator: every batch is new spectra (fresh
absorbers and noise), so the network never sees the same spectrum twice; validation and test
sets are fixed (seed, index range) and can be regenerated anywhere."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

import mgfast
from mgfast import grid
from mgfast.model import FLUX_ONLY, check_channels, input_features
from mgfast.simulate import Realism, Simulation

N_CELLS = -(-grid.N_PIX // 4)  # 1579 cells of 4 pixels for the FCN's heatmap


@dataclass(frozen=True)
class DataConfig:
    seed: int = 2026
    absorber_fraction: float = 0.8  # the paper's training set: 80 % with an absorber
    max_absorbers: int = 1  # up to 4: 1-4 absorbers in a sightline that has any
    realistic_fraction: float = 0.5  # share of batches drawn with Realism.survey()
    snr: tuple[float, ...] = (3, 5, 10, 20, 30, 40, 50)  # the paper's SNR values
    # "paper": the batches above; "sky": the widened sky (docs/TRAINING.md): a fifth of the
    # batches as "paper" idealised ones, three tenths with the sky kinematics and the instrument
    # (SKY_INSTRUMENT), half with the sky kinematics and Realism.sky(), EW2796 0.05-6.5 Å.
    mix: str = "paper"
    sky_ew_range: tuple[float, float] = (0.05, 6.5)
    blend_fraction: float = 0.0  # "sky" mix, several absorbers: share placed as blends
    # "sky" mix: share of the Realism.sky() batches made unnormalised (a quasar continuum with
    # emission lines) and normalised by mgfast's own continuum fit, half of them given z_em (the
    # forest's mean-flux regulation): the network then sees the fit's residuals (emission lines,
    # the forest) as the pipeline makes them on real spectra, not only a smooth continuum error
    fitted_fraction: float = 0.0


# The instrument and reduction of Realism.sky() without its astrophysics (forest, metals,
# interlopers, impostors): the "sky" mix's middle kind of batch.
SKY_INSTRUMENT = Realism(
    resolution_range=(15000.0, 25000.0),
    wavelength_shift_kms=3.0,
    err_misestimate=0.3,
    correlated_noise=0.5,
    random_edges=True,
    cosmic_ray_rate=1.0,
    continuum_error=0.01,
)


# Batch kinds whose spectra go through the continuum fit (batch_kind): 4 without z_em, 5 with.
FITTED_KINDS = (4, 5)


def fitted_mode(kind: int) -> int:
    """model_input's ``fitted`` for a batch kind."""
    return FITTED_KINDS.index(kind) + 1 if kind in FITTED_KINDS else 0


def batch_kind(step: int, cfg: DataConfig) -> int:
    """The kind of batch `step` (a pure function of the step, so resumed runs agree): for the
    "paper" mix 0 idealised, 1 Realism.survey(); for the "sky" mix 0 paper idealised, 2 sky
    kinematics with SKY_INSTRUMENT, 3 sky kinematics with Realism.sky(); with
    ``fitted_fraction``, that share of the kind-3 batches become 4 (unnormalised, through the
    continuum fit) or 5 (the same given z_em), alternately."""
    h = (step * 7919) % 100
    if cfg.mix == "paper":
        return 1 if h < 100 * cfg.realistic_fraction else 0
    if cfg.mix != "sky":
        raise ValueError(f"mix: expected 'paper' or 'sky', got {cfg.mix!r}")
    kind = 0 if h < 20 else (2 if h < 50 else 3)
    if kind == 3 and cfg.fitted_fraction > 0.0:
        h2 = (step * 104729 + 17) % 1000
        if h2 < 1000 * cfg.fitted_fraction:
            kind = 4 if h2 % 2 == 0 else 5
    return kind


def simulate_kwargs(kind: int, cfg: DataConfig) -> dict:
    """mgfast.simulate's arguments for a batch of `kind` (batch_kind)."""
    if kind == 0:
        return {"realism": None}
    if kind == 1:
        return {"realism": Realism.survey()}
    realism = SKY_INSTRUMENT if kind == 2 else Realism.sky()
    if kind in FITTED_KINDS:
        realism = dataclasses.replace(realism, unnormalised=True)
    return {
        "realism": realism,
        "kinematics": "sky",
        "ew_range": cfg.sky_ew_range,
        "blend_fraction": cfg.blend_fraction,
    }


def model_input(
    sim: Simulation,
    threads: int = 1,
    device: str = "cpu",
    channels: Sequence[str] | None = None,
    fitted: int = 0,
) -> np.ndarray:
    """What the network reads: the grid fast path of preprocessing (bad pixels filled with 1),
    (N, n_pix); with ``channels`` other than flux only (mgfast.model.INPUT_CHANNELS), the
    features mgfast.model.input_features computes from its flux and ivar, as the engines do,
    channels-last (N, n_pix, C). ``fitted``: the spectra are unnormalised and go through the
    continuum fit (1: without z_em, 2: given the truth's z_em)."""
    pre = mgfast.preprocess(
        sim.flux, None, sim.err, allow_empty=True, threads=threads, device=device,
        normalised=not fitted, z_em=sim.truth.z_em if fitted == 2 else None,
    )  # fmt: skip
    channels = check_channels(channels)
    if channels == FLUX_ONLY:
        return pre.flux
    return input_features(pre.flux, pre.ivar, channels, channels_last=True, threads=threads)


def fcn_targets(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """Class per spectrum (the cell holding λ2796, or N_CELLS for none) and [cell, offset]."""
    t = sim.truth
    pix = grid.pixel_of(np.where(t.has_absorber, t.lambda2796, 0.0))
    has = t.has_absorber & np.isfinite(pix)
    cell = np.where(has, np.floor(np.nan_to_num(pix) / 4.0), N_CELLS).astype(np.int32)
    offset = np.where(has, np.nan_to_num(pix) - 4.0 * cell, 0.0).astype(np.float32)
    cls = np.minimum(cell, N_CELLS)
    return cls, np.stack([np.where(has, cell, -1).astype(np.float32), offset], axis=1)


def multi_targets(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: 1 where an absorber's λ2796 lies (N, cells); and (N, cells, 4) = [there is
    one, its offset in pixels from the cell start, ln EW2796, ln EW2803] (zeros elsewhere)."""
    t = sim.truth
    n = t.abs_z.shape[0]
    cells = np.zeros((n, N_CELLS), np.float32)
    reg = np.zeros((n, N_CELLS, 4), np.float32)
    lam = t.abs_lambda2796
    ok = np.isfinite(lam)
    pix = grid.pixel_of(np.where(ok, lam, 0.0))
    ok &= np.isfinite(pix)
    rows, cols = np.nonzero(ok)
    px = pix[rows, cols]
    cell = np.minimum(np.floor(px / 4.0).astype(np.int64), N_CELLS - 1)
    cells[rows, cell] = 1.0
    reg[rows, cell, 0] = 1.0
    reg[rows, cell, 1] = px - 4.0 * cell
    reg[rows, cell, 2] = np.log(np.maximum(t.abs_ew2796[rows, cols], 1e-3))
    reg[rows, cell, 3] = np.log(np.maximum(t.abs_ew2803[rows, cols], 1e-3))
    return cells, reg


def joint_targets(sim: Simulation, summary: bool = True) -> tuple[np.ndarray, ...]:
    """mgfast_joint: fcn_targets then multi_targets. Without ``summary`` (multi-absorber
    batches, which mgfast_fcn's one-absorber heatmap cannot describe) the summary's class is -1
    and its cell -1: both summary losses skip those spectra."""
    if summary:
        cls, off = fcn_targets(sim)
    else:
        n = sim.flux.shape[0]
        cls = np.full(n, -1, np.int32)
        off = np.stack([np.full(n, -1.0, np.float32), np.zeros(n, np.float32)], axis=1)
    return (cls, off, *multi_targets(sim))


def paper_targets(sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    t = sim.truth
    return t.has_absorber.astype(np.float32)[:, None], t.lambda2796.astype(np.float32)[:, None]


def batches(
    cfg: DataConfig,
    batch_size: int,
    start_step: int,
    arch: str,
    prefetch: int = 4,
    threads: int = 1,
    producers: int = 1,
    device: str = "cpu",
    group: int = 1,
    channels: Sequence[str] | None = None,
) -> Iterator[tuple[np.ndarray, tuple[np.ndarray, ...]]]:
    """Endless training batches from step ``start_step`` (resumable: batch k is always the same),
    made while the network trains by ``producers`` background threads (each simulating with
    ``threads`` threads, on ``device``) and handed out in step order. Each producer makes
    ``group`` consecutive batches in one call (a GPU is full only with tens of thousands of
    spectra in flight); batch k is the same spectra whatever the grouping. ``channels``: the
    network's input channels (model_input).

    If the device fails (a CUDA error), the producers say so once and go on on the CPU: the
    spectra are the same numbers either way (tests/test_simulate.py checks CPU against CUDA).
    """
    targets = {
        "mgfast_fcn": fcn_targets,
        "mgfast_multi": multi_targets,
        "mgfast_joint": lambda sim: joint_targets(sim, summary=cfg.max_absorbers == 1),
    }.get(arch, paper_targets)
    queues: list[queue.Queue] = [queue.Queue(maxsize=prefetch) for _ in range(producers)]
    where = {"device": device}

    def simulate(steps: range, kind: int) -> list:
        kw = dict(
            seed=cfg.seed,
            start=steps.start * batch_size,
            snr=cfg.snr,
            with_absorber_fraction=cfg.absorber_fraction,
            max_absorbers=cfg.max_absorbers,
            threads=threads,
            **simulate_kwargs(kind, cfg),
        )
        n = len(steps) * batch_size
        dev = where["device"]
        try:
            sim = mgfast.simulate(n, device=dev, **kw)
            x = model_input(sim, threads, dev, channels, fitted_mode(kind))
        except RuntimeError as e:
            if dev == "cpu":
                raise
            print(f"data: {dev} failed ({e}); making the batches on the CPU", flush=True)
            where["device"] = "cpu"
            sim = mgfast.simulate(n, device="cpu", **kw)
            x = model_input(sim, threads, channels=channels, fitted=fitted_mode(kind))
        y = targets(sim)
        out = []
        for k in range(len(steps)):
            sl = slice(k * batch_size, (k + 1) * batch_size)
            out.append((x[sl], tuple(t[sl] for t in y)))
        return out

    def make(first: int) -> list:
        """Batches first … first + group - 1; runs of the same kind (batch_kind) are simulated
        in one call."""
        out: list = []
        step = first
        while step < first + group:
            kind = batch_kind(step, cfg)
            end = step + 1
            while end < first + group and batch_kind(end, cfg) == kind:
                end += 1
            out += simulate(range(step, end), kind)
            step = end
        return out

    stop = threading.Event()

    def produce(k: int) -> None:
        first = start_step + k * group
        while not stop.is_set():
            item = make(first)
            while not stop.is_set():
                try:
                    queues[k].put(item, timeout=0.1)
                    break
                except queue.Full:
                    pass
            first += producers * group

    # Closing the generator (or its collection) stops and joins the producers: a thread left
    # inside the compiled core while the interpreter shuts down aborts the process.
    pool = [threading.Thread(target=produce, args=(k,), daemon=True) for k in range(producers)]
    for t in pool:
        t.start()
    try:
        g = 0
        while True:
            yield from queues[g % producers].get()
            g += 1
    finally:
        stop.set()
        for t in pool:
            t.join()


def fixed_set(
    n_per_snr: int,
    seed: int,
    realistic: bool = False,
    absorber_fraction: float = 0.5,
    snr: tuple[float, ...] = (3, 5, 10, 20, 30, 40, 50),
    max_absorbers: int = 1,
    sky: bool = False,
    fitted: bool = False,
) -> Simulation:
    """A fixed evaluation set: n_per_snr spectra at each SNR, 50/50 with/without absorber
    (``max_absorbers`` > 1: 1 to that many in those with any); ``sky``: the sky kinematics
    with Realism.sky() (simulate_kwargs(3, DataConfig())); ``fitted`` (with sky): unnormalised,
    for model_input(..., fitted=1 or 2) (simulate_kwargs(4, ...))."""
    kw = simulate_kwargs(4 if fitted else 3, DataConfig()) if sky else {}
    if not sky:
        kw["realism"] = Realism.survey() if realistic else None
    sims = [
        mgfast.simulate(
            n_per_snr,
            seed=seed + 1000 * i,
            snr=s,
            with_absorber_fraction=absorber_fraction,
            max_absorbers=max_absorbers,
            **kw,
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
