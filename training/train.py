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

import keras
import numpy as np

import mgfast
from mgfast.model import FLUX_ONLY, check_channels
from mgfast_train.data import DataConfig, batches, fixed_set, model_input
from mgfast_train.decode import decode
from mgfast_train.models import (
    ARCHITECTURES,
    copy_trunk,
    flops_per_spectrum,
    input_channels,
    set_weights_widening,
)
from mgfast_train.objectives import training_model

# The paper's learning-rate steps: the rate drops tenfold after these epochs of its 150.
PAPER_EPOCH_BOUNDS = (19, 79, 119)
PAPER_EPOCHS = 150


def paper_rates(peak: float) -> list[float]:
    """The paper's rates, peak then /10, /100, /1000 (its text has peak 1e-2, its code 1e-3)."""
    return [peak / 10**k for k in range(len(PAPER_EPOCH_BOUNDS) + 1)]


def paper_schedule(peak: float, steps_per_epoch: int):  # type: ignore[no-untyped-def]
    """The paper's step schedule over optimizer steps."""
    bounds = [b * steps_per_epoch for b in PAPER_EPOCH_BOUNDS]
    return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, paper_rates(peak))


def time_lr(arch: str, peak: float, done: float) -> float:
    """The learning rate at fraction ``done`` of a time budget: for mgfast_fcn and mgfast_multi
    a linear warm-up over the first 5 % from peak/10, then cosine decay to peak/100; for
    bycycle2023 the paper's steps at the same fractions of its 150 epochs."""
    if arch == "bycycle2023":
        rates = paper_rates(peak)
        for bound, rate in zip(PAPER_EPOCH_BOUNDS, rates, strict=False):
            if done <= bound / PAPER_EPOCHS:
                return rate
        return rates[-1]
    if done < 0.05:
        return peak / 10 + (peak - peak / 10) * done / 0.05
    frac = min(1.0, (done - 0.05) / 0.95)
    return peak * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * frac)))


def ew_error(found, sim) -> float:  # type: ignore[no-untyped-def]
    """Median |relative error| of EW2796 over the found absorbers matched to a true one."""
    from mgfast.absorbers import match

    col, _ = match(found.spectrum, found.lambda2796, sim.truth.abs_lambda2796)
    ok = col >= 0
    if not ok.any():
        return float("nan")
    true = sim.truth.abs_ew2796[found.spectrum[ok], col[ok]]
    return float(np.median(np.abs(found.ew2796[ok] / true - 1.0)))


def quick_metrics(arch: str, net: keras.Model, val, val_multi=None, val_real=None) -> dict:  # type: ignore[no-untyped-def]
    ch = input_channels(net)
    x = model_input(val, channels=ch)
    if arch == "mgfast_joint":  # the summary on val and val_real, the absorbers' EW on val_multi
        from mgfast.absorbers import decode_absorbers

        out = net.predict(model_input(val_multi, channels=ch), batch_size=256, verbose=0)
        found = decode_absorbers(out[3], out[4])
        real = decode(
            arch, net.predict(model_input(val_real, channels=ch), batch_size=256, verbose=0)
        )
        return {
            **summary_metrics(*decode(arch, net.predict(x, batch_size=256, verbose=0)), val),
            "val_ew": ew_error(found.select(found.score >= 0.5), val_multi),
            # the summary on realistic spectra: where joint training cost it (docs/RESULTS.md)
            "val_real_accuracy": summary_metrics(*real, val_real)["val_accuracy"],
        }
    if arch == "mgfast_multi":  # per absorber, at raw score 0.5: completeness and purity
        from mgfast.absorbers import decode_absorbers, match

        logits, maps = net.predict(x, batch_size=256, verbose=0)
        found = decode_absorbers(logits, maps)
        found = found.select(found.score >= 0.5)
        col, got = match(found.spectrum, found.lambda2796, val.truth.abs_lambda2796)
        n_true = np.isfinite(val.truth.abs_lambda2796).sum()
        ok = col >= 0
        lam_err = np.abs(
            found.lambda2796[ok] - val.truth.abs_lambda2796[found.spectrum[ok], col[ok]]
        )
        return {
            "val_accuracy": float(got.sum() / max(n_true, 1)),  # completeness
            "val_mae": float(lam_err.mean()) if ok.any() else float("nan"),
            "val_purity": float(ok.mean()) if ok.size else float("nan"),
        }
    return summary_metrics(*decode(arch, net.predict(x, batch_size=256, verbose=0)), val)


def summary_metrics(prob: np.ndarray, lam: np.ndarray, val) -> dict:  # type: ignore[no-untyped-def]
    """Per-spectrum accuracy at 0.5 and the λ2796 MAE (Å) over the spectra called positive."""
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
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate: default 2e-3 for mgfast_fcn, 1e-3 for bycycle2023 (the rate of "
        "the paper's public code, 10x below the paper's text; at 1e-2 the network died on a GPU)",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, log, config)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--init", default=None, help="start from these weights (.keras) instead of random"
    )
    p.add_argument("--realistic-fraction", type=float, default=0.5)
    p.add_argument(
        "--mix",
        choices=("paper", "sky"),
        default="paper",
        help="kinds of training batch: the paper-like simulator (with --realistic-fraction of "
        "Realism.survey()), or the widened sky (data.batch_kind; docs/TRAINING.md)",
    )
    p.add_argument(
        "--blend-fraction",
        type=float,
        default=0.0,
        help="--mix sky: share of the absorbers after the first placed 150-500 km/s from it",
    )
    p.add_argument(
        "--fitted-fraction",
        type=float,
        default=0.0,
        help="--mix sky: share of the Realism.sky() batches made unnormalised and normalised by "
        "mgfast's continuum fit (half of them given z_em), so the network sees the fit's "
        "residuals",
    )
    p.add_argument(
        "--input-channels",
        default="flux",
        help="what the network reads, comma-separated, flux first: flux, whitened, log_snr "
        "(mgfast.model.input_features; docs/TRAINING.md). --init / --init-trunk from a "
        "one-channel run start the new channels' first-layer weights at zero",
    )
    p.add_argument(
        "--freeze-trunk",
        action="store_true",
        help="keep the trunk from --init-trunk fixed: train the head only (mgfast_multi's head on "
        "the shipped mgfast_fcn's trunk makes the mgfast_dual network, docs/TRAINING.md)",
    )
    p.add_argument(
        "--init-trunk",
        default=None,
        help="mgfast_multi: start its trunk (the first eight convolutions) from this mgfast_fcn",
    )
    p.add_argument(
        "--summary-weight",
        type=float,
        default=1.0,
        help="mgfast_joint: weight of the summary heads' losses against the maps' (which "
        "otherwise pull the shared trunk away from what the summary needs)",
    )
    p.add_argument("--max-absorbers", type=int, default=None, help="default: 4 for mgfast_multi")
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--val-per-snr", type=int, default=300)
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="a time budget: the learning-rate schedule runs over this many seconds of training "
        "instead of --steps (cosine for mgfast_fcn, the paper's steps for bycycle2023, both "
        "compressed into the budget); training stops when it is spent or at --steps",
    )
    p.add_argument(
        "--report-seconds",
        type=float,
        default=300.0,
        help="timed runs: evaluate and log at least this often (the evaluation's time counts "
        "against the budget)",
    )
    p.add_argument("--data-threads", type=int, default=1, help="threads per batch producer")
    p.add_argument("--producers", type=int, default=1, help="background batch producers")
    p.add_argument("--data-device", default="cpu", help="simulate and preprocess on this device")
    p.add_argument("--data-group", type=int, default=1, help="batches a producer makes at once")
    p.add_argument(
        "--paper-epoch-steps",
        type=int,
        default=1370,
        help="bycycle2023: steps per epoch of the paper's schedule (685,237 / 500)",
    )
    args = p.parse_args()
    try:
        channels = check_channels(args.input_channels)
    except ValueError as e:
        sys.exit(f"--input-channels: {e}")
    if args.arch == "bycycle2023" and channels != FLUX_ONLY:
        sys.exit("--input-channels: bycycle2023 is the paper's network and reads the flux only")
    args.input_channels = ",".join(channels)
    if args.lr is None:
        args.lr = 1e-3 if args.arch == "bycycle2023" else 2e-3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    timed = args.max_seconds is not None
    if timed:
        lr = 0.0  # a variable, set from the elapsed time at every step (time_lr)
    elif args.arch != "bycycle2023":
        warm = min(500, args.steps // 10)
        lr = keras.optimizers.schedules.CosineDecay(
            args.lr / 10, args.steps - warm, alpha=0.01, warmup_target=args.lr, warmup_steps=warm
        )
    else:
        lr = paper_schedule(args.lr, args.paper_epoch_steps)
    state_path, ckpt = out / "state.json", out / "ckpt.weights.h5"
    if args.freeze_trunk and not (args.init_trunk or state_path.exists()):
        sys.exit("--freeze-trunk needs --init-trunk (the trunk to keep)")
    net, train = training_model(
        args.arch,
        lr,
        freeze_trunk=args.freeze_trunk,
        summary_weight=args.summary_weight,
        channels=channels,
    )
    step = 0
    # seconds of training before this invocation: a timed run's schedule (time_lr) goes on from
    # where it stopped when resumed, rather than warming up again
    elapsed0 = 0.0
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state["arch"] != args.arch:
            sys.exit(f"{out}: holds a {state['arch']} run, not {args.arch}")
        if state.get("input_channels", "flux") != args.input_channels:
            sys.exit(
                f"{out}: holds a run with input channels {state.get('input_channels', 'flux')}, "
                f"not {args.input_channels}"
            )
        train.optimizer.build(train.trainable_variables)
        train.load_weights(ckpt)
        opt_vars = np.load(out / "optimizer.npz")
        for v, k in zip(train.optimizer.variables, sorted(opt_vars.files, key=int), strict=True):
            v.assign(opt_vars[k])
        step = state["step"]
        elapsed0 = float(state.get("elapsed_s", 0.0))
        print(f"resuming {args.arch} at step {step} ({elapsed0:.0f} s trained)", flush=True)
    else:
        if args.init and args.arch == "mgfast_joint" and "," in args.init:
            from mgfast_train.models import join

            fcn_path, multi_path = args.init.split(",")
            net.set_weights(
                join(
                    *(keras.saving.load_model(q, compile=False) for q in (fcn_path, multi_path)),
                    channels=channels,
                ).get_weights()
            )
            print(f"starting from the trunk and heads of {fcn_path} + head of {multi_path}")
        elif args.init:
            src = keras.saving.load_model(args.init, compile=False)
            set_weights_widening(net, src.get_weights())
            widened = (
                f" (its {','.join(input_channels(src))} input widened to {args.input_channels}: "
                "new channels start at zero)"
                if input_channels(src) != channels
                else ""
            )
            print(f"starting from the weights of {args.init}{widened}", flush=True)
        if args.init_trunk:  # after --init: the trunk of one model, the head of another
            copy_trunk(keras.saving.load_model(args.init_trunk, compile=False), net)
            frozen = " (frozen)" if args.freeze_trunk else ""
            print(f"trunk from {args.init_trunk}{frozen}", flush=True)
    config = {
        **vars(args),
        "flops_per_spectrum": flops_per_spectrum(net),
        "params": net.count_params(),
        "mgfast_version": mgfast.__version__,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))

    joint = args.arch == "mgfast_joint"
    max_abs = args.max_absorbers or (4 if args.arch in ("mgfast_multi", "mgfast_joint") else 1)
    # mgfast_joint: half of each batch one-absorber spectra (both heads' losses), half
    # multi-absorber ones (mgfast_multi's losses only), from two generators.
    kinds = (
        [(1, args.batch // 2, 0), (max_abs, args.batch - args.batch // 2, 7)]
        if joint
        else [(max_abs, args.batch, 0)]
    )
    val = fixed_set(args.val_per_snr, seed=args.seed + 1, max_absorbers=1 if joint else max_abs)
    val_multi = (
        fixed_set(args.val_per_snr, seed=args.seed + 2, max_absorbers=max_abs) if joint else None
    )
    val_real = fixed_set(args.val_per_snr, seed=args.seed + 3, realistic=True) if joint else None
    gens = [
        batches(
            DataConfig(
                seed=args.seed + dseed,
                realistic_fraction=args.realistic_fraction,
                max_absorbers=m,
                mix=args.mix,
                blend_fraction=args.blend_fraction,
                fitted_fraction=args.fitted_fraction,
            ),
            size,
            step,
            args.arch,
            threads=args.data_threads,
            producers=args.producers,
            device=args.data_device,
            group=args.data_group,
            channels=channels,
        )
        for m, size, dseed in kinds
    ]

    def next_batch() -> tuple:
        parts = [next(g) for g in gens]
        if len(parts) == 1:
            return parts[0]
        x = np.concatenate([p[0] for p in parts])
        y = tuple(np.concatenate(ts) for ts in zip(*(p[1] for p in parts), strict=True))
        return x, y

    log = open(out / "log.csv", "a")
    if step == 0:
        log.write("step,seconds,spectra_seen,loss,val_accuracy,val_mae\n")
    t0, seen0, losses = time.time(), step * args.batch, []
    last_eval, compiled = t0, False

    def save(step: int) -> None:
        train.save_weights(ckpt)
        np.savez(
            out / "optimizer.npz",
            **{str(i): np.asarray(v) for i, v in enumerate(train.optimizer.variables)},
        )
        elapsed = elapsed0 + (time.time() - t0 if compiled else 0.0)
        state_path.write_text(
            json.dumps(
                {
                    "arch": args.arch,
                    "step": step,
                    "input_channels": args.input_channels,
                    "elapsed_s": round(elapsed, 1),
                }
            )
        )

    done = 0.0  # fraction of the time budget spent (timed runs)
    while step < args.steps and done < 1.0:
        x, y = next_batch()
        if timed:
            done = (elapsed0 + time.time() - t0) / args.max_seconds
            train.optimizer.learning_rate.assign(time_lr(args.arch, args.lr, done))
        logs = train.train_on_batch(x, list(y), return_dict=True)
        losses.append(float(logs["loss"]))
        step += 1
        if not compiled:  # the clock starts after the first step: compiling it is not training
            compiled, t0, last_eval, seen0 = True, time.time(), time.time(), step * args.batch
        last = step == args.steps or (timed and elapsed0 + time.time() - t0 >= args.max_seconds)
        done = 1.0 if last else done
        if step % args.ckpt_every == 0 or last:
            save(step)
        # timed runs also report every --report-seconds (their step count is not known in advance)
        if (
            step % args.eval_every == 0
            or last
            or (timed and time.time() - last_eval >= args.report_seconds)
        ):
            last_eval = time.time()
            m = quick_metrics(args.arch, net, val, val_multi, val_real)
            dt = time.time() - t0
            rate = (step * args.batch - seen0) / dt
            log.write(
                f"{step},{elapsed0 + dt:.0f},{step * args.batch},{np.mean(losses):.5f},"
                f"{m['val_accuracy']:.5f},{m['val_mae']:.4f}\n"
            )
            log.flush()
            print(
                f"step {step}/{args.steps} loss {np.mean(losses):.4f} val acc "
                f"{m['val_accuracy']:.4f} mae {m['val_mae']:.2f} Å"
                + (f" EW err {m['val_ew']:.4f}" if "val_ew" in m else "")
                + (f" realistic acc {m['val_real_accuracy']:.4f}" if "val_ew" in m else "")
                + f" ({rate:.0f} spectra/s, "
                f"lr {float(train.optimizer.learning_rate):.2e})",
                flush=True,
            )
            losses = []
    for g in gens:
        g.close()  # stops the batch producers
    net.save(out / "final.keras")
    print(f"done: {out / 'final.keras'}")


if __name__ == "__main__":
    main()
