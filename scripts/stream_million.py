"""One million simulated spectra through Detector.detect_stream on the CPU: counts the results
and reports the peak resident memory (issue: peak RSS < 2 GB, exactly 1,000,000 results).

    python scripts/stream_million.py [--n 1000000] [--batch 4096] [--model DIR]

The batches are simulated by the stream's reader thread while the detector works (idealised,
the paper's setup, half with an absorber), so the run also shows that a producer faster or
slower than the detector never makes memory grow: it is bounded by the prefetch queue.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

import mgfast


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--model", default=None)
    p.add_argument("--seed", type=int, default=99)
    a = p.parse_args()
    det = mgfast.Detector(model=a.model)

    def batches():
        for start in range(0, a.n, a.batch):
            yield mgfast.simulate(
                min(a.batch, a.n - start), seed=a.seed, start=start, with_absorber_fraction=0.5
            )

    t0 = time.perf_counter()
    n_results, n_errors, n_detected, last_id = 0, 0, 0, -1
    ids_in_order = True
    for k, r in enumerate(det.detect_stream(batches())):
        if r.error is not None:
            n_errors += len(r.ids)
            continue
        n_results += len(r.detections)
        n_detected += int(np.sum(r.detections.detected))
        ids_in_order &= bool(r.ids[0] == last_id + 1 and np.all(np.diff(r.ids) == 1))
        last_id = int(r.ids[-1])
        if k % 25 == 0:
            rate = n_results / (time.perf_counter() - t0)
            print(f"  {n_results:,} spectra, {rate:,.0f}/s", file=sys.stderr, flush=True)
    dt = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    print(f"spectra in: {a.n:,}; results: {n_results:,}; failed: {n_errors:,}; "
          f"ids consecutive: {ids_in_order}; detected: {n_detected:,}")  # fmt: skip
    print(f"peak RSS: {peak_mb:,.0f} MB; {dt:,.0f} s ({n_results / dt:,.0f} spectra/s, "
          "simulation included)")  # fmt: skip
    return 0 if n_results == a.n and n_errors == 0 and ids_in_order else 1


if __name__ == "__main__":
    sys.exit(main())
