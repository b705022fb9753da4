"""A Keras mgfast_fcn with the weights of an exported model (a model directory, such as the
shipped ``python/mgfast/models/default``), so that training can start from a shipped model when
its run directory is not at hand:

    KERAS_BACKEND=jax python training/keras_from_model.py python/mgfast/models/default \
        --out runs/default-keras.keras

With ``--arch mgfast_multi`` and an mgfast_dual model (``python/mgfast/models/multi``) it writes
the mgfast_multi Keras model instead: the dual's trunk and its map head (to warm-start a map head).

The conversion is checked: the Keras model's probabilities and λ2796 (mgfast_fcn), or its cell
maps (mgfast_multi), equal the CPU engine's on simulated spectra (to float rounding), or the
script fails.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

import mgfast
from mgfast import model as mm
from mgfast_train.data import model_input
from mgfast_train.decode import decode
from mgfast_train.models import mgfast_fcn, mgfast_multi


def _set_convs(net, convs: list) -> None:  # type: ignore[no-untyped-def]
    """The Keras model's convolutions, in order and without its 1x1 heads, from the engine's."""
    heads = ("cell_logit", "cell_offset", "cell_maps")
    mine = [layer for layer in net.layers if layer.__class__.__name__ == "Conv1D"]
    mine = [layer for layer in mine if layer.name not in heads]
    if len(mine) != len(convs):
        raise ValueError(f"{len(convs)} convolutions in the model, {len(mine)} in {net.name}")
    for layer, conv in zip(mine, convs, strict=True):
        layer.set_weights([np.transpose(conv.weight, (2, 1, 0)), conv.bias])


def _keras_channels(md: mm.Model) -> tuple[str, ...] | None:
    return None if md.input_channels == mm.FLUX_ONLY else md.input_channels


def keras_fcn(model_dir: str):  # type: ignore[no-untyped-def]
    """mgfast_fcn in Keras with the exported model's weights (its summary head for a dual)."""
    md = mm.load_model(model_dir)
    heat_at = next(i for i, layer in enumerate(md.layers) if isinstance(layer, mm.Heatmap))
    heat = md.layers[heat_at]
    net = mgfast_fcn(channels=_keras_channels(md))
    width = int(heat.weight.size // 4)
    _set_convs(net, [layer for layer in md.layers[:heat_at] if isinstance(layer, mm.Conv1d)])
    w, b = heat.weight.astype(np.float32), heat.bias.astype(np.float32)
    net.get_layer("cell_logit").set_weights([w[:width].reshape(1, width, 1), b[:1]])
    net.get_layer("cell_offset").set_weights([w[width : 2 * width].reshape(1, width, 1), b[1:2]])
    net.get_layer("none_logit").set_weights([w[2 * width :].reshape(2 * width, 1), b[2:3]])
    return net


def keras_multi(model_dir: str):  # type: ignore[no-untyped-def]
    """mgfast_multi in Keras with an mgfast_dual model's trunk and map head."""
    md = mm.load_model(model_dir)
    if md.architecture != "mgfast_dual":
        raise ValueError(f"{model_dir}: an mgfast_dual model is needed, not {md.architecture}")
    convs = [layer for layer in md.layers if isinstance(layer, mm.Conv1d)]
    net = mgfast_multi(channels=_keras_channels(md))
    *body, last = convs
    _set_convs(net, body)
    w = np.transpose(last.weight, (2, 1, 0))  # (1, width, 7): the logit, then the six maps
    net.get_layer("cell_logit").set_weights([w[..., :1], last.bias[:1]])
    net.get_layer("cell_maps").set_weights([w[..., 1:], last.bias[1:]])
    return net


def check_maps(net, model_dir: str, n: int = 128) -> float:  # type: ignore[no-untyped-def]
    """Largest |map_keras − map_engine| on n simulated spectra (fails above 1e-3)."""
    sim = mgfast.simulate(n, seed=12345, with_absorber_fraction=0.8, max_absorbers=4)
    md = mm.load_model(model_dir)
    pre = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True)
    maps = mgfast.CpuBackend(md, threads=0).infer_map(pre.flux, pre.ivar)
    logits, rest = net.predict(model_input(sim, channels=md.input_channels), verbose=0)
    keras_maps = np.concatenate([np.asarray(logits)[..., None], np.asarray(rest)], axis=2)
    d = float(np.max(np.abs(keras_maps - maps)))
    if d > 1e-3:
        raise SystemExit(f"conversion check failed: max |Δmap| {d:.2e}")
    print(f"Keras vs engine: max |Δmap| {d:.2e} on {n} spectra")
    return d


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
    p.add_argument(
        "--arch",
        default="mgfast_fcn",
        choices=("mgfast_fcn", "mgfast_multi"),
        help="mgfast_fcn (the summary network) or mgfast_multi (a dual's map head on its trunk)",
    )
    args = p.parse_args()
    if args.arch == "mgfast_multi":
        net = keras_multi(args.model)
        check_maps(net, args.model)
    else:
        net = keras_fcn(args.model)
        check(net, args.model)
    net.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
