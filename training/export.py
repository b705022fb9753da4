"""Export a trained Keras model to an mgfast model directory (model.onnx + model.json), checked
against the Keras outputs with ONNX Runtime.

    KERAS_BACKEND=jax python training/export.py runs/fcn/final.keras --arch mgfast_fcn \\
        --out python/mgfast/models/default [--metrics eval.json] [--youden 0.7] [--tensorrt]

The ONNX graph is written from the weights by mgfast.model.build_onnx (explicit dynamic batch,
opset 17, standard operators only: TensorRT-ready). --tensorrt builds a TensorRT engine beside it
where the tensorrt module is importable (it is not on the machines this was developed on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
from data import model_input
from decode import decode

import mgfast
from mgfast.model import build_onnx, load_model, save_model


def keras_weights(net, arch: str) -> list[tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(kernel, bias) of every weighted layer, in order, in Keras' layouts."""
    import keras

    out = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv1D | keras.layers.Dense):
            k, b = layer.get_weights()
            out.append((k.astype(np.float32), b.astype(np.float32)))
    if arch == "mgfast_fcn":  # build_onnx wants cell, offset, none last, in that order
        names = [layer.name for layer in net.layers if layer.get_weights()]
        order = [
            i for i, n in enumerate(names) if n not in ("cell_logit", "cell_offset", "none_logit")
        ]
        order += [names.index(n) for n in ("cell_logit", "cell_offset", "none_logit")]
        out = [out[i] for i in order]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("keras_model")
    p.add_argument("--arch", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", default=None, help="evaluate.py --json output to record")
    p.add_argument(
        "--calibrate",
        type=int,
        default=0,
        help="choose thresholds on a fresh validation set of this many spectra per "
        "SNR (seed 4041, not the test sets): Youden's J on idealised spectra and "
        "1 %% false positives on realistic ones, the latter the default",
    )
    p.add_argument("--default-threshold", type=float, default=0.5)
    p.add_argument("--run", default=None, help="training run directory (config.json, log.csv)")
    p.add_argument("--tensorrt", action="store_true")
    args = p.parse_args()

    import keras
    import onnxruntime as ort

    net = keras.saving.load_model(args.keras_model, compile=False)
    onnx_model = build_onnx(args.arch, keras_weights(net, args.arch))
    training = {"keras_model": os.path.basename(args.keras_model)}
    if args.run:
        training["runs"] = []
        for run in args.run.split(","):
            with open(os.path.join(run, "config.json")) as f:
                cfg = json.load(f)
            log = np.genfromtxt(os.path.join(run, "log.csv"), delimiter=",", names=True)
            training["runs"].append(
                {
                    **cfg,
                    "spectra_seen": int(np.atleast_1d(log["spectra_seen"])[-1]),
                    "seconds": float(np.atleast_1d(log["seconds"])[-1]),
                }
            )
    metrics = {}
    if args.metrics:
        with open(args.metrics) as f:
            metrics = json.load(f)
    thresholds = {"default": args.default_threshold, "paper": 0.5}
    if args.calibrate:
        from data import fixed_set
        from metrics import threshold_at_fpr, youden

        for realistic in (False, True):
            val = fixed_set(args.calibrate, seed=4041, realistic=realistic)
            prob, _ = decode(args.arch, net.predict(model_input(val), batch_size=256, verbose=0))
            has = val.truth.has_absorber
            if realistic:
                thresholds["fpr1_realistic"] = threshold_at_fpr(prob, has, 0.01)
            else:
                thresholds["youden"] = youden(prob, has)[0]
        thresholds["default"] = float(min(thresholds["fpr1_realistic"], 0.999))
        training["thresholds"] = (
            f"chosen on {args.calibrate} spectra per SNR, seed 4041: youden "
            "on idealised, fpr1_realistic (the default) on Realism.survey()"
        )
    thresholds = {k: float(v) for k, v in thresholds.items()}
    d = save_model(
        args.out,
        onnx_model,
        args.arch,
        trained=True,
        training=training,
        metrics=metrics,
        thresholds=thresholds,
    )

    # The check: Keras, ONNX Runtime and mgfast's CPU engine on the same spectra.
    sim = mgfast.simulate(512, seed=99, with_absorber_fraction=0.5)
    x = model_input(sim)
    k_out = [np.asarray(o) for o in net.predict(x, batch_size=256, verbose=0)]
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    o_out = dict(zip(names, sess.run(None, {"flux": x}), strict=True))
    want = (
        ["cell_logits", "cell_offsets", "none_logit"]
        if args.arch == "mgfast_fcn"
        else ["probability", "lambda2796"]
    )
    raw = max(
        float(np.abs(k.reshape(o_out[n].shape) - o_out[n]).max())
        for k, n in zip(k_out, want, strict=True)
    )
    kp, kl = decode(args.arch, k_out)
    engine = mgfast.CpuBackend(load_model(d), threads=0)
    ep, el = engine.infer(x)
    print(f"ONNX Runtime vs Keras, raw outputs: max abs diff {raw:.2e}")
    dp, dl = np.abs(ep - kp).max(), np.abs(el - kl).max()
    print(f"engine vs Keras: probability {dp:.2e}, λ2796 {dl:.3f} Å")
    if raw > 1e-4:
        raise SystemExit(
            f"export check failed: ONNX Runtime differs from Keras by {raw:.2e} > 1e-4"
        )
    if args.tensorrt:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise SystemExit("--tensorrt: the tensorrt module is not importable here") from None
        raise SystemExit("--tensorrt: engine building is not implemented yet")
    print(f"wrote {d} ({os.path.getsize(d / 'model.onnx') / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
