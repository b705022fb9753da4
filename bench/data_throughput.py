"""Training-data throughput: spectra/s delivered by mgfast_train.data's batch producers (the
simulator, half of the batches with Realism.survey(), the network's input and targets), on a
given device, as the training loop sees it.

    python bench/data_throughput.py [--device cuda:0] [--batch 512] [--group 32] [--producers 2]
        [--threads 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import time

from mgfast_train.data import DataConfig, batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--group", type=int, default=1)
    p.add_argument("--producers", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seconds", type=float, default=20.0)
    a = p.parse_args()
    gen = batches(
        DataConfig(), a.batch, 0, "mgfast_fcn", threads=a.threads, producers=a.producers,
        device=a.device, group=a.group,
    )  # fmt: skip
    next(gen)  # warm up: the first group
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        next(gen)
        n += a.batch
    rate = n / (time.perf_counter() - t0)
    gen.close()
    print(
        f"training data on {a.device}: {rate:,.0f} spectra/s (batch {a.batch}, group {a.group}, "
        f"{a.producers} producers x {a.threads or 'all'} threads)"
    )


if __name__ == "__main__":
    main()
