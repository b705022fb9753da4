"""Training throughput (spectra/s) of each architecture on this machine: train_on_batch steps on
random input after a warm-up, Keras 3 on the backend KERAS_BACKEND names (default JAX).

    KERAS_BACKEND=jax python bench/train_throughput.py [--batch 16] [--steps 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

from mgfast_train.models import ARCHITECTURES
from mgfast_train.objectives import training_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = (1 - 0.1 * rng.random((args.batch, 6315))).astype(np.float32)
    print(f"Keras {keras.__version__} on {keras.backend.backend()}, batch {args.batch}")
    for arch in sorted(ARCHITECTURES):
        _, model = training_model(arch, 1e-4)
        if arch == "mgfast_fcn":
            y = [np.full(args.batch, 100, np.int32), np.tile([[100.0, 1.5]], (args.batch, 1))]
        else:
            y = [np.ones((args.batch, 1), np.float32), np.full((args.batch, 1), 5000.0, np.float32)]
        model.train_on_batch(x, y)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        rate = args.steps * args.batch / (time.perf_counter() - t0)
        print(f"{arch}: {rate:.1f} spectra/s")


if __name__ == "__main__":
    main()
