"""Export a trained Keras model to an mgfast model directory (model.onnx + model.json), checked
against the Keras outputs with ONNX Runtime.

    KERAS_BACKEND=jax python training/export.py runs/fcn/final.keras --arch mgfast_fcn \\
        --out python/mgfast/models/default [--metrics eval.json] [--youden 0.7] [--tensorrt]
    KERAS_BACKEND=jax python training/export.py runs/dual/final.keras --arch mgfast_dual \\
        --summary-keras runs/fcn/final.keras --summary-thresholds python/mgfast/models/default \\
        --out python/mgfast/models/dual --calibrate 1000

mgfast_dual is mgfast_multi's head, trained on a frozen mgfast_fcn trunk (train.py
--freeze-trunk), joined to that mgfast_fcn's own heads: the export checks that the two Keras
models share the trunk exactly, and takes the summary's thresholds from the mgfast_fcn model.

The ONNX graph is written from the weights by mgfast.model.build_onnx (explicit dynamic batch,
opset 17, standard operators only: TensorRT-ready). A model that reads more than the flux
(train.py --input-channels) keeps its channels: model.json's input.channels, ONNX input
"features" (N, C, n_pix). --tensorrt builds a TensorRT engine beside it
where the tensorrt module is importable (it is not on the machines this was developed on).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

import mgfast
from mgfast.model import (
    FCN_CONVS,
    FLUX_ONLY,
    MULTI_OUTPUT,
    build_onnx,
    input_features,
    input_name,
    load_model,
    save_model,
)
from mgfast_train.data import model_input
from mgfast_train.decode import decode


def channels_of(net) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    from mgfast_train.models import input_channels

    return input_channels(net)


def three_inputs(net, sim):  # type: ignore[no-untyped-def]
    """The same spectra as Keras, ONNX Runtime and the engine read them: (Keras input, the
    ONNX graph's input as a feed dict, (flux, ivar) for the engine)."""
    ch = channels_of(net)
    pre = mgfast.preprocess(sim.flux, None, sim.err, allow_empty=True)
    xk = model_input(sim, channels=ch)
    xo = pre.flux if ch == FLUX_ONLY else input_features(pre.flux, pre.ivar, ch)
    return xk, {input_name(ch): xo}, (pre.flux, pre.ivar)


def keras_weights(net, arch: str) -> list[tuple[np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(kernel, bias) of every weighted layer, in order, in Keras' layouts."""
    import keras

    out = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv1D | keras.layers.Dense):
            k, b = layer.get_weights()
            out.append((k.astype(np.float32), b.astype(np.float32)))
    heads = {
        "mgfast_fcn": ("cell_logit", "cell_offset", "none_logit"),
        "mgfast_multi": ("cell_logit", "cell_maps"),
    }.get(arch)
    if heads:  # build_onnx wants the heads last, in this order
        names = [layer.name for layer in net.layers if layer.get_weights()]
        order = [i for i, n in enumerate(names) if n not in heads]
        order += [names.index(n) for n in heads]
        out = [out[i] for i in order]
    return out


def multi_candidates(net, sim):  # type: ignore[no-untyped-def]
    """mgfast_multi on a simulation: the decoded candidates (raw scores) and whether each is a
    real absorber (within 5 Å of one, one to one)."""
    from mgfast.absorbers import decode_absorbers, match

    x = model_input(sim, channels=channels_of(net))
    logits, maps = net.predict(x, batch_size=256, verbose=0)
    found = decode_absorbers(logits, maps)
    col, _ = match(found.spectrum, found.lambda2796, sim.truth.abs_lambda2796)
    return found, col >= 0


def check_multi(net, d, summary_net=None) -> None:  # type: ignore[no-untyped-def]
    """Keras, ONNX Runtime and the CPU engine on the same spectra: the maps, and the decoded
    absorbers."""
    import onnxruntime as ort

    from mgfast.absorbers import decode_absorbers

    sim = mgfast.simulate(256, seed=99, with_absorber_fraction=0.8, max_absorbers=4)
    x, feed, (flux, ivar) = three_inputs(net, sim)
    logits, maps = (np.asarray(o) for o in net.predict(x, batch_size=256, verbose=0))
    keras_maps = np.concatenate([logits[..., None], maps], axis=2)
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    o = sess.run([MULTI_OUTPUT], feed)[0]
    engine = mgfast.CpuBackend(load_model(d), threads=0)
    e = engine.infer_map(flux, ivar)
    if summary_net is not None:  # mgfast_dual: its summary is the mgfast_fcn's own
        kp, kl = decode("mgfast_fcn", [np.asarray(v) for v in summary_net.predict(x, verbose=0)])
        ep, el, _ = engine.infer_dual(flux, ivar)
        dp, dl = float(np.abs(ep - kp).max()), float(np.abs(el - kl).max())
        print(f"summary, engine vs the mgfast_fcn Keras model: probability {dp:.2e}, λ {dl:.3f} Å")
        if dp > 1e-4:
            raise SystemExit("export check failed: the summary differs from mgfast_fcn's")
    raw, eng = float(np.abs(o - keras_maps).max()), float(np.abs(e - keras_maps).max())
    a = decode_absorbers(logits, maps)
    b = decode_absorbers(e[..., 0], e[..., 1:])
    same = len(a) == len(b) and np.allclose(a.lambda2796, b.lambda2796, atol=1e-3)
    print(f"ONNX Runtime vs Keras, maps: {raw:.2e}; engine vs Keras: {eng:.2e}; "
          f"decoded absorbers identical: {same} ({len(a)})")  # fmt: skip
    if raw > 1e-4 or eng > 1e-3 or not same:
        raise SystemExit("export check failed")


def absorber_threshold_at_fpr(  # type: ignore[no-untyped-def]
    net, calibration, n: int, summary_net=None, fpr: float = 0.01
) -> float:
    """A multi-absorber model's threshold: on a fresh sky-mode realistic set (n spectra per SNR,
    seed 4042, half without an absorber), the calibrated probability of each spectrum's most
    probable absorber (its catalogue row; for mgfast_dual lifted by its summary head as the
    Detector does, absorbers.lift_by_summary) at which ``fpr`` of the spectra without one are
    detected."""
    import dataclasses

    from mgfast.absorbers import lift_by_summary
    from mgfast_train.data import fixed_set
    from mgfast_train.metrics import threshold_at_fpr

    val = fixed_set(n, seed=4042, sky=True)
    found, _ = multi_candidates(net, val)
    found = dataclasses.replace(found, probability=np.interp(found.score, *calibration))
    if summary_net is not None:
        x = model_input(val, channels=channels_of(summary_net))
        p_s, lam_s = decode("mgfast_fcn", summary_net.predict(x, batch_size=256, verbose=0))
        found = lift_by_summary(found, p_s, lam_s)
    row = np.zeros(len(val.flux))
    np.maximum.at(row, found.spectrum, found.probability)
    return float(min(threshold_at_fpr(row, val.truth.has_absorber, fpr), 0.999))


THRESHOLDS_TEXT = (
    "chosen on {n} spectra per SNR, seed 4041: youden on idealised, fpr1_realistic (the default) "
    "on {realistic}"
)


THRESHOLD_SETS = {
    "survey": "Realism.survey()",
    "sky": "Realism.sky() with the sky kinematics",
    "sky-fitted": "Realism.sky() with the sky kinematics, both continuum-normalised and "
    "unnormalised through mgfast's continuum fit (half of them given z_em), the higher of "
    "the two thresholds, so that either input keeps to 1 % false positives",
}


def thresholds_text(n: int, threshold_set: str) -> str:
    """model.json's note on where the thresholds were chosen."""
    return THRESHOLDS_TEXT.format(n=n, realistic=THRESHOLD_SETS[threshold_set])


def choose_thresholds(net, arch: str, n: int, threshold_set: str = "survey") -> dict[str, float]:  # type: ignore[no-untyped-def]
    """A one-absorber network's thresholds on fresh validation sets of n spectra per SNR (seed
    4041, not the test sets): Youden's J on idealised spectra, 1 % false positives on realistic
    ones (``threshold_set``: THRESHOLD_SETS), the latter the default."""
    from mgfast_train.data import fixed_set
    from mgfast_train.metrics import threshold_at_fpr, youden

    def probabilities(val, fitted: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
        x = model_input(val, channels=channels_of(net), fitted=fitted)
        return decode(arch, net.predict(x, batch_size=256, verbose=0))[0]

    val = fixed_set(n, seed=4041)
    out = {"youden": youden(probabilities(val), val.truth.has_absorber)[0]}
    sky = threshold_set in ("sky", "sky-fitted")
    val = fixed_set(n, seed=4041, realistic=not sky, sky=sky)
    out["fpr1_realistic"] = threshold_at_fpr(probabilities(val), val.truth.has_absorber, 0.01)
    if threshold_set == "sky-fitted":  # the same spectra's kind unnormalised, through the fit
        val = fixed_set(n, seed=4041, sky=True, fitted=True)
        half = len(val.flux) // 2
        prob = np.concatenate([
            probabilities(_rows(val, slice(0, half)), fitted=1),
            probabilities(_rows(val, slice(half, None)), fitted=2),
        ])  # fmt: skip
        fitted_thr = threshold_at_fpr(prob, val.truth.has_absorber, 0.01)
        out["fpr1_fitted"] = fitted_thr
        out["fpr1_realistic"] = max(out["fpr1_realistic"], fitted_thr)
    out["default"] = float(min(out["fpr1_realistic"], 0.999))
    return out


def _rows(sim, sl: slice):  # type: ignore[no-untyped-def]
    """The spectra sl of a Simulation (flux, errors and truth)."""
    import dataclasses

    truth = {f.name: getattr(sim.truth, f.name)[sl] for f in dataclasses.fields(sim.truth)}
    return dataclasses.replace(sim, flux=sim.flux[sl], err=sim.err[sl],
                               truth=type(sim.truth)(**truth))  # fmt: skip


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
    p.add_argument(
        "--threshold-set",
        choices=tuple(THRESHOLD_SETS),
        default="survey",
        help="the realistic validation set whose negatives set the default threshold (1 %% "
        "false positives): Realism.survey(), Realism.sky() with the sky kinematics, or "
        "(sky-fitted, one-absorber models) the same both normalised and through mgfast's "
        "continuum fit, the higher threshold",
    )
    p.add_argument("--run", default=None, help="training run directory (config.json, log.csv)")
    p.add_argument("--tensorrt", action="store_true")
    p.add_argument("--summary-keras", default=None, help="mgfast_dual: the mgfast_fcn .keras")
    p.add_argument(
        "--summary-thresholds",
        default=None,
        help="mgfast_dual: the exported mgfast_fcn model directory whose thresholds to keep",
    )
    args = p.parse_args()

    import keras
    import onnxruntime as ort

    if args.keras_model.endswith(".weights.h5"):  # a checkpoint of train.py
        from mgfast_train.models import ARCHITECTURES

        state = os.path.join(os.path.dirname(args.keras_model), "state.json")
        run_state = json.load(open(state)) if os.path.exists(state) else {}
        trained = run_state.get("arch")
        if trained not in ARCHITECTURES:  # no run state beside it: what --arch implies
            trained = "mgfast_multi" if args.arch == "mgfast_dual" else args.arch
        from mgfast_train.objectives import training_model

        # the checkpoint holds the training model
        ch = run_state.get("input_channels", "flux").split(",")
        net, train = training_model(trained, 0.0, channels=tuple(ch))
        train.load_weights(args.keras_model)
    else:
        net = keras.saving.load_model(args.keras_model, compile=False)
    summary_net = None
    joint = net.name == "mgfast_joint"  # one trunk trained with both heads (train.py)
    if joint:
        from mgfast_train.models import split_joint

        if args.arch != "mgfast_dual":
            raise SystemExit("an mgfast_joint model is exported with --arch mgfast_dual")
        if not args.calibrate:
            raise SystemExit(
                "--arch mgfast_dual from mgfast_joint needs --calibrate (its summary's "
                "thresholds are its own)"
            )
        summary_net, net = split_joint(net)
    if args.arch == "mgfast_dual" and not joint:
        if not (args.summary_keras and args.summary_thresholds):
            raise SystemExit("--arch mgfast_dual needs --summary-keras and --summary-thresholds")
        summary_net = keras.saving.load_model(args.summary_keras, compile=False)
    channels = channels_of(net)
    if summary_net is not None and channels_of(summary_net) != channels:
        raise SystemExit(
            f"the two models read different inputs: {channels_of(summary_net)} and {channels}"
        )
    if args.arch == "mgfast_dual":
        fcn_w = keras_weights(summary_net, "mgfast_fcn")
        multi_w = keras_weights(net, "mgfast_multi")
        n_trunk = len(FCN_CONVS)
        for i, ((a, b), (c, e)) in enumerate(zip(fcn_w[:n_trunk], multi_w[:n_trunk], strict=True)):
            if not (np.array_equal(a, c) and np.array_equal(b, e)):
                raise SystemExit(f"the two models' trunks differ at convolution {i}")
        onnx_model = build_onnx(args.arch, fcn_w + multi_w[n_trunk:], channels=channels)
    else:
        onnx_model = build_onnx(args.arch, keras_weights(net, args.arch), channels=channels)
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
    if joint:  # the summary's, chosen as for mgfast_fcn, and the absorbers' own
        thresholds |= choose_thresholds(
            summary_net, "mgfast_fcn", args.calibrate, args.threshold_set
        )
        thresholds["absorber"] = 0.5
        note = thresholds_text(args.calibrate, args.threshold_set)
        training["summary"] = {"trained": "with the map head (mgfast_joint)", "thresholds": note}
    elif args.arch == "mgfast_dual":  # the summary's, and the absorbers' own
        thresholds = dict(load_model(args.summary_thresholds).thresholds) | {"absorber": 0.5}
        training["summary"] = {
            "keras_model": os.path.basename(args.summary_keras),
            "thresholds_from": os.path.normpath(args.summary_thresholds),
        }
    calibration, sigma_scale = None, None
    if args.calibrate and args.arch in ("mgfast_multi", "mgfast_dual"):
        if args.threshold_set == "sky-fitted":
            raise SystemExit("--threshold-set sky-fitted: one-absorber models only (for now)")
        from mgfast.absorbers import (
            expected_calibration_error,
            fit_calibration,
            match,
            sigma_scales,
        )
        from mgfast_train.data import fixed_set

        sky = args.threshold_set == "sky"
        scores, real, scales = [], [], []
        for realistic in (False, True):
            val = fixed_set(
                args.calibrate, seed=4041, realistic=realistic and not sky,
                absorber_fraction=0.8, max_absorbers=4, sky=realistic and sky,
            )  # fmt: skip
            found, ok = multi_candidates(net, val)
            scores.append(found.score)
            real.append(ok)
            sel = found.select(found.score >= 0.5)
            col = match(sel.spectrum, sel.lambda2796, val.truth.abs_lambda2796)[0]
            scales.append(sigma_scales(sel, col, val.truth))
        score, is_real = np.concatenate(scores), np.concatenate(real)
        calibration = fit_calibration(score, is_real)
        sigma_scale = {k: float(np.mean([sc[k] for sc in scales])) for k in scales[0]}
        print(f"σ scale factors (68 % coverage): {sigma_scale}")
        ece_raw = expected_calibration_error(score, is_real)[0]
        ece = expected_calibration_error(np.interp(score, *calibration), is_real)[0]
        print(f"calibration on {score.size:,} candidates: ECE {ece_raw:.4f} raw, {ece:.4f} after")
        realistic_set = "Realism.sky() with the sky kinematics" if sky else "Realism.survey()"
        training["calibration"] = (
            f"isotonic, on the candidates of {args.calibrate} spectra per SNR (seed 4041, 0-4 "
            f"absorbers, idealised and {realistic_set}), real = within 5 Å of a true λ2796"
        )
        if args.threshold_set == "sky":  # the rows summarise the absorbers: 1 % FP per spectrum
            t = absorber_threshold_at_fpr(net, calibration, args.calibrate, summary_net)
            thresholds |= {"absorber": t, "default": t}
            training["thresholds"] = (
                f"absorber (= default): 1 % of the spectra without an absorber of "
                f"{args.calibrate} per SNR (seed 4042, {realistic_set}) get one at or above it "
                "(the spectrum row is its most probable absorber)"
            )
            print(f"absorber threshold at 1 % false positives per spectrum: {t:.4f}")
    elif args.calibrate:
        thresholds |= choose_thresholds(net, args.arch, args.calibrate, args.threshold_set)
        training["thresholds"] = thresholds_text(args.calibrate, args.threshold_set)
    thresholds = {k: float(v) for k, v in thresholds.items()}
    d = save_model(
        args.out,
        onnx_model,
        args.arch,
        trained=True,
        training=training,
        metrics=metrics,
        thresholds=thresholds,
        calibration=calibration,
        sigma_scale=sigma_scale,
        input_channels=channels,
    )

    # The check: Keras, ONNX Runtime and mgfast's CPU engine on the same spectra.
    if args.arch in ("mgfast_multi", "mgfast_dual"):
        check_multi(net, d, summary_net)
        print(f"wrote {d} ({os.path.getsize(d / 'model.onnx') / 1e6:.2f} MB)")
        return
    sim = mgfast.simulate(512, seed=99, with_absorber_fraction=0.5)
    x, feed, (flux, ivar) = three_inputs(net, sim)
    k_out = [np.asarray(o) for o in net.predict(x, batch_size=256, verbose=0)]
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    o_out = dict(zip(names, sess.run(None, feed), strict=True))
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
    ep, el = engine.infer(flux, ivar)
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
