"""Train a network on simulator data generated on the fly, with checkpoints and resume.

    KERAS_BACKEND=jax python training/train.py --arch mgfast_fcn --steps 20000 --out runs/fcn
    (same command again resumes from runs/fcn/ckpt.keras)

Recipes (docs/TRAINING.md): CPU, 2 cores: mgfast_fcn, batch 64, ~150 spectra/s. One H100, JAX:
bycycle2023 with the paper's batch 500 and learning-rate steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras
import numpy as np
from data import DataConfig, batches, fixed_set, model_input
from decode import decode
from keras import ops
from models import ARCHITECTURES, flops_per_spectrum

import mgfast


def offset_l1(y_true, y_pred):  # type: ignore[no-untyped-def]
    """|offset − truth| at the true cell, in pixels; spectra without an absorber add nothing."""
    cell = ops.cast(y_true[:, 0], "int32")
    has = ops.cast(cell >= 0, "float32")
    idx = ops.expand_dims(ops.maximum(cell, 0), 1)
    pred = ops.take_along_axis(y_pred, idx, axis=1)[:, 0]
    return ops.sum(has * ops.abs(pred - y_true[:, 1])) / ops.maximum(ops.sum(has), 1.0)


def training_model(arch: str, lr_schedule) -> tuple[keras.Model, keras.Model]:  # type: ignore[no-untyped-def]
    """The inference model and the model that is trained (same weights, losses attached)."""
    net = ARCHITECTURES[arch]()
    opt = keras.optimizers.Adam(learning_rate=lr_schedule, epsilon=1e-7)
    if arch == "mgfast_fcn":
        cells, offsets, none = net.outputs
        logits = keras.layers.Concatenate(name="logits")([cells, none])
        train = keras.Model(net.input, [logits, offsets])
        train.compile(
            optimizer=opt,
            loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True), offset_l1],
        )
    else:  # the paper: 300 × BCE + MAE (Å)
        train = net
        train.compile(
            optimizer=opt,
            loss=[keras.losses.BinaryCrossentropy(), keras.losses.MeanAbsoluteError()],
            loss_weights=[300.0, 1.0],
        )
    return net, train


def paper_schedule(total_steps: int, steps_per_epoch: int):  # type: ignore[no-untyped-def]
    """The paper's step schedule, 1e-2 (epochs <= 19), 1e-3 (<= 79), 1e-4 (<= 119), 1e-5."""
    bounds = [19 * steps_per_epoch, 79 * steps_per_epoch, 119 * steps_per_epoch]
    return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, [1e-2, 1e-3, 1e-4, 1e-5])


def quick_metrics(arch: str, net: keras.Model, val) -> dict:  # type: ignore[no-untyped-def]
    x = model_input(val)
    prob, lam = decode(arch, net.predict(x, batch_size=256, verbose=0))
    t = val.truth
    pred = prob >= 0.5
    acc = float((pred == t.has_absorber).mean())
    mae = float(np.abs(lam[pred] - t.lambda2796[pred]).mean()) if pred.any() else float("nan")
    return {"val_accuracy": acc, "val_mae": mae}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="mgfast_fcn")
    p.add_argument("--steps", type=int, required=True, help="total optimizer steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (mgfast_fcn)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, log, config)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--init", default=None, help="start from these weights (.keras) instead of random"
    )
    p.add_argument("--realistic-fraction", type=float, default=0.5)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--val-per-snr", type=int, default=300)
    p.add_argument(
        "--paper-epoch-steps",
        type=int,
        default=1370,
        help="bycycle2023: steps per epoch of the paper's schedule (685,237 / 500)",
    )
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    if args.arch == "mgfast_fcn":
        warm = min(500, args.steps // 10)
        lr = keras.optimizers.schedules.CosineDecay(
            args.lr / 10, args.steps - warm, alpha=0.01, warmup_target=args.lr, warmup_steps=warm
        )
    else:
        lr = paper_schedule(args.steps, args.paper_epoch_steps)
    net, train = training_model(args.arch, lr)
    state_path, ckpt = out / "state.json", out / "ckpt.weights.h5"
    step = 0
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["arch"] != args.arch:
            sys.exit(f"{out}: holds a {state['arch']} run, not {args.arch}")
        train.optimizer.build(train.trainable_variables)
        train.load_weights(ckpt)
        opt_vars = np.load(out / "optimizer.npz")
        for v, k in zip(train.optimizer.variables, sorted(opt_vars.files, key=int), strict=True):
            v.assign(opt_vars[k])
        step = state["step"]
        print(f"resuming {args.arch} at step {step}", flush=True)
    elif args.init:
        net.set_weights(keras.saving.load_model(args.init, compile=False).get_weights())
        print(f"starting from the weights of {args.init}", flush=True)
    config = {
        **vars(args),
        "flops_per_spectrum": flops_per_spectrum(net),
        "params": net.count_params(),
        "mgfast_version": mgfast.__version__,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))

    cfg = DataConfig(seed=args.seed, realistic_fraction=args.realistic_fraction)
    val = fixed_set(args.val_per_snr, seed=args.seed + 1)  # idealised, 50/50
    gen = batches(cfg, args.batch, step, args.arch)
    log = open(out / "log.csv", "a")
    if step == 0:
        log.write("step,seconds,spectra_seen,loss,val_accuracy,val_mae\n")
    t0, seen0, losses = time.time(), step * args.batch, []

    def save(step: int) -> None:
        train.save_weights(ckpt)
        np.savez(
            out / "optimizer.npz",
            **{str(i): np.asarray(v) for i, v in enumerate(train.optimizer.variables)},
        )
        state_path.write_text(json.dumps({"arch": args.arch, "step": step}))

    while step < args.steps:
        x, y = next(gen)
        logs = train.train_on_batch(x, list(y), return_dict=True)
        losses.append(float(logs["loss"]))
        step += 1
        if step % args.ckpt_every == 0 or step == args.steps:
            save(step)
        if step % args.eval_every == 0 or step == args.steps:
            m = quick_metrics(args.arch, net, val)
            dt = time.time() - t0
            rate = (step * args.batch - seen0) / dt
            log.write(
                f"{step},{dt:.0f},{step * args.batch},{np.mean(losses):.5f},"
                f"{m['val_accuracy']:.5f},{m['val_mae']:.4f}\n"
            )
            log.flush()
            print(
                f"step {step}/{args.steps} loss {np.mean(losses):.4f} val acc "
                f"{m['val_accuracy']:.4f} mae {m['val_mae']:.2f} Å ({rate:.0f} spectra/s)",
                flush=True,
            )
            losses = []
    net.save(out / "final.keras")
    print(f"done: {out / 'final.keras'}")


if __name__ == "__main__":
    main()
