"""A Keras mgfast_fcn with the weights of an exported model (a model directory, such as the
shipped ``python/mgfast/models/default``), so that training can start from a shipped model when
its run directory is not at hand:

    KERAS_BACKEND=jax python training/keras_from_model.py python/mgfast/models/default \
        --out runs/default-keras.keras

The conversion is checked: the Keras model's probabilities and λ2796 equal the CPU engine's on
simulated spectra (to float rounding), or the script fails.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from data import model_input
from decode import decode
from models import mgfast_fcn

import mgfast
from mgfast import model as mm


def keras_fcn(model_dir: str):  # type: ignore[no-untyped-def]
    """mgfast_fcn in Keras with the exported model's weights (its summary head for a dual)."""
    md = mm.load_model(model_dir)
    convs = [layer for layer in md.layers if isinstance(layer, mm.Conv1d)]
    heat = next(layer for layer in md.layers if isinstance(layer, mm.Heatmap))
    channels = md.input_channels
    net = mgfast_fcn(channels=None if channels == mm.FLUX_ONLY else channels)
    width = int(heat.weight.size // 4)
    trunk = [layer for layer in net.layers if layer.__class__.__name__ == "Conv1D"]
    trunk = [layer for layer in trunk if layer.name not in ("cell_logit", "cell_offset")]
    if len(trunk) < len(convs):
        raise ValueError(f"{model_dir}: {len(convs)} convolutions, Keras trunk {len(trunk)}")
    for layer, conv in zip(trunk, convs, strict=False):
        layer.set_weights([np.transpose(conv.weight, (2, 1, 0)), conv.bias])
    w, b = heat.weight.astype(np.float32), heat.bias.astype(np.float32)
    net.get_layer("cell_logit").set_weights([w[:width].reshape(1, width, 1), b[:1]])
    net.get_layer("cell_offset").set_weights([w[width : 2 * width].reshape(1, width, 1), b[1:2]])
    net.get_layer("none_logit").set_weights([w[2 * width :].reshape(2 * width, 1), b[2:3]])
    return net


def check(net, model_dir: str, n: int = 256) -> float:  # type: ignore[no-untyped-def]
    """Largest |p_keras − p_engine| on n simulated spectra (fails above 1e-4 or 0.05 Å)."""
    sim = mgfast.simulate(n, seed=12345, with_absorber_fraction=0.5)
    det = mgfast.Detector(model=model_dir, threshold=0.5)
    res = det.detect(sim.flux, err=sim.err)
    x = model_input(sim, channels=mm.load_model(model_dir).input_channels)
    prob, lam = decode("mgfast_fcn", net.predict(x, batch_size=256, verbose=0))
    dp = float(np.max(np.abs(prob - res.probability)))
    found = prob > 0.5
    dl = float(np.max(np.abs(lam[found] - res.wavelength[found]), initial=0.0))
    if dp > 1e-4 or dl > 0.05:
        raise SystemExit(f"conversion check failed: max |Δp| {dp:.2e}, max |Δλ| {dl:.3f} Å")
    print(f"Keras vs engine: max |Δp| {dp:.2e}, max |Δλ| {dl:.4f} Å on {n} spectra")
    return dp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an exported model directory (mgfast_fcn or mgfast_dual)")
    p.add_argument("--out", required=True, help="the .keras file to write")
    args = p.parse_args()
    net = keras_fcn(args.model)
    check(net, args.model)
    net.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
