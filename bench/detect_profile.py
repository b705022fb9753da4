"""Where ``Detector.detect`` spends its time, stage by stage (issue 20), on spectra as files give
them: on their own wavelength grid (per arm, linear in λ, as 4MOST L1 spectra are), with errors,
not continuum-normalised, with z_em.

    python bench/detect_profile.py [--n 2048] [--threads 2] [--model default] [--repeat 3]

Stages (``mgfast.stages``; the best of --repeat runs of each, on the same input):
prepare (split into resampling onto the grid, the continuum fit, and the rest: masks, z_em, SNR,
EW weights, measured by difference from preprocess on already-gridded or normalised input),
infer, decode, measure, assemble; then ``Detector.detect`` whole, the engine's network alone on
the prepared input (the same batches) and ONNX Runtime (fp32, same threads) on it. The ratios
issue 20 asks for: end to end over the network alone, and over ONNX Runtime.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
from native_grid import native_grid

import mgfast
from mgfast import stages
from mgfast.bench import best_time, cpu_name
from mgfast.model import input_features
from mgfast.preprocess import preprocess


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--model", default=None)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    det = mgfast.Detector(model=a.model, threads=a.threads, precision=a.precision)
    assert det.model is not None and det._backend is not None
    wave, flux, err, z_em = native_grid(a.n, a.seed)
    kw: dict[str, Any] = dict(normalised=False, threads=a.threads)

    def best(fn: Callable[[], Any]) -> tuple[float, Any]:
        return best_time(fn, a.repeat, warm_up=True)

    t: dict[str, float] = {}
    t["prepare"], prep = best(lambda: stages.prepare(flux, wave, err, z_em=z_em, **kw))
    # prepare's parts, by difference: the same spectra already on the grid, then normalised too
    on_grid = preprocess(flux, wave, err, normalised=True, allow_empty=True, threads=a.threads)
    g_flux, g_ivar = np.ascontiguousarray(on_grid.flux), np.ascontiguousarray(on_grid.ivar)
    t_grid_unnorm, _ = best(
        lambda: preprocess(g_flux, None, None, ivar=g_ivar, normalised=False,
                           allow_empty=True, threads=a.threads)
    )  # fmt: skip
    t_grid_norm, _ = best(
        lambda: preprocess(g_flux, None, None, ivar=g_ivar, normalised=True,
                           allow_empty=True, threads=a.threads)
    )  # fmt: skip
    t_pre_full, _ = best(
        lambda: preprocess(flux, wave, err, normalised=False, allow_empty=True, threads=a.threads)
    )
    parts = {
        "  resampling onto the grid": t_pre_full - t_grid_unnorm,
        "  continuum fit": t_grid_unnorm - t_grid_norm,
        "  masks and checks (preprocess on the grid, normalised)": t_grid_norm,
        "  z_em, SNR, EW weights": t["prepare"] - t_pre_full,
    }
    t["infer"], out = best(lambda: stages.infer(det, prep))
    t["decode"], dec = best(lambda: stages.decode(det, out, len(prep)))
    t["measure"], dec2 = best(lambda: stages.measure(det, prep, dec))
    t["assemble"], _ = best(lambda: stages.assemble(det, prep, dec2, False))
    t_detect, _ = best(lambda: det.detect(flux, wave, err, normalised=False, z_em=z_em))

    backend = det._backend
    x = np.ascontiguousarray(prep.flux, np.float32)
    iv = prep.ivar_ew if det.model.reads_noise else None
    net = backend.infer_map if backend.map_output else backend.infer
    t_net, _ = best(lambda: net(x, iv))
    t_ort = None
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = backend.threads
        opts.inter_op_num_threads = 1
        s = ort.InferenceSession(str(det.model.onnx_path), opts, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        xo = x if iv is None else input_features(x, iv, det.model.input_channels)
        batch = backend.batch_size

        def ort_run() -> None:
            for i in range(0, a.n, batch):
                s.run(None, {name: xo[i : i + batch]})

        t_ort, _ = best(ort_run)

    total = sum(t.values())
    print(
        f"# Detector.detect, stage by stage: {a.n} spectra on their own grid with errors "
        f"({wave.size} pixels), unnormalised, with z_em"
    )
    print(
        f"# {date.today()}, {cpu_name()} ({platform.machine()}), {backend.threads} threads, "
        f"model {det.model_name} ({det.model.architecture}), {a.precision}, batch "
        f"{backend.batch_size}, mgfast {mgfast.__version__}; best of {a.repeat}"
    )
    print("| stage | ms | spectra/s | share of the stages |")
    print("|---|---:|---:|---:|")
    for k, v in t.items():
        print(f"| {k} | {1e3 * v:.1f} | {a.n / v:,.0f} | {100 * v / total:.1f} % |")
        if k == "prepare":
            for pk, pv in parts.items():
                print(f"| {pk} | {1e3 * pv:.1f} | | {100 * pv / total:.1f} % |")
    print(f"| **sum of the stages** | {1e3 * total:.1f} | {a.n / total:,.0f} | |")
    print(f"| **Detector.detect** | {1e3 * t_detect:.1f} | {a.n / t_detect:,.0f} | |")
    print(
        f"| network alone (the engine, same batches) | {1e3 * t_net:.1f} | {a.n / t_net:,.0f} | |"
    )
    if t_ort is not None:
        print(f"| ONNX Runtime fp32, network alone | {1e3 * t_ort:.1f} | {a.n / t_ort:,.0f} | |")
    print()
    print(f"end to end / network alone: {t_net / t_detect:.2f}x (issue 20's bar: >= 0.8x)")
    if t_ort is not None:
        print(f"end to end / ONNX Runtime:  {t_ort / t_detect:.2f}x (issue 20's bar: >= 3x)")


if __name__ == "__main__":
    main()
