"""Fuzz the spectrum readers: mutate valid files of every format mgfast reads (bit flips,
truncations, inserted and deleted bytes, header cards, VLA descriptors, gzip streams, NumPy
headers; mgfast.testing.fuzz_files) and read each one as ``mgfast detect`` would, then preprocess
what it gives. The contract (docs/io.md): spectra, or ``mgfast.io.ReadError``; never another
exception, a crash or a hang.

Each file is read in a worker process with a per-file timeout (a hang is reported, the worker
restarted) and an address-space limit (a runaway allocation is a MemoryError, not a swapping
machine). Case ``i`` of seed ``S`` is rebuilt exactly by ``--seed S --only i --keep DIR``.

    python scripts/fuzz_readers.py --n-files 20000 --seed 0 --out-json fuzz.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mgfast.testing import fuzz_files

ADDRESS_SPACE = 6 << 30  # bytes a worker may map


def _worker(conn) -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    import mgfast  # noqa: F401  (imported once, before the clock of the first file)

    while True:
        job = conn.recv()
        if job is None:
            return
        path, fmt = job
        try:
            outcome, detail = fuzz_files.check_file(path, fmt)
        except BaseException as e:
            outcome = f"FAIL {type(e).__name__}"
            detail = "".join(traceback.format_exception(e))[-3000:]
        conn.send((outcome, detail))


class Reader:
    """A worker process that reads files, restarted after a hang or a crash."""

    def __init__(self) -> None:
        self.proc = None
        self.conn = None
        self.start()

    def start(self) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()

    def check(self, path: str, fmt: str | None, timeout: float) -> tuple[str, str]:
        self.conn.send((path, fmt))
        if not self.conn.poll(timeout):
            self.proc.kill()
            self.proc.join()
            self.start()
            return "HANG", f"no answer in {timeout:g} s"
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join()
            code = self.proc.exitcode
            self.start()
            return "CRASH", f"worker died (exit code {code})"

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-json", type=Path)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per file (a hang)")
    ap.add_argument("--only", type=int, help="run case I of the seed alone")
    ap.add_argument("--keep", type=Path, help="keep the failing files (or --only's) here")
    ap.add_argument("--bases", help="comma-separated base files (default: all of them)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mgfast-fuzz-"))
    names = tuple(args.bases.split(",")) if args.bases else None
    bases = fuzz_files.base_files(work, names)
    reader = Reader()
    cases = [args.only] if args.only is not None else range(args.n_files)
    outcomes: Counter = Counter()
    per_base: dict[str, Counter] = defaultdict(Counter)
    per_kind: dict[str, Counter] = defaultdict(Counter)
    failures = []
    wrapped: Counter = Counter()  # the ReadErrors made of other libraries' exceptions, by reason
    for i in cases:
        rng = np.random.default_rng([args.seed, i])
        base, kind, data = fuzz_files.make_case(bases, rng)
        fmt = base.format if rng.random() < 0.3 else None
        path = work / f"case{base.suffix}"
        path.write_bytes(data)
        outcome, detail = reader.check(str(path), fmt, args.timeout)
        cls = outcome
        outcomes[cls] += 1
        per_base[base.name][cls] += 1
        per_kind[kind][cls] += 1
        if cls == "ReadError-wrapped":
            wrapped[detail.split(": ", 1)[-1][:90]] += 1
        if cls.startswith(("FAIL", "HANG", "CRASH")) or args.only is not None:
            print(f"case {i} (--seed {args.seed} --only {i}): {base.name} / {kind} / format "
                  f"{fmt}: {outcome}\n{detail}", flush=True)  # fmt: skip
            failures.append({"case": i, "seed": args.seed, "base": base.name, "kind": kind,
                             "format": fmt, "outcome": outcome, "detail": detail})  # fmt: skip
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"case{i}-{base.name}{base.suffix}").write_bytes(data)
        done = i + 1 if args.only is None else 1
        if args.only is None and done % max(1, args.n_files // 10) == 0:
            rate = done / (time.perf_counter() - t0)
            print(f"{done}/{args.n_files} files, {rate:.1f} files/s, {dict(outcomes)}",
                  file=sys.stderr, flush=True)  # fmt: skip
    reader.close()
    wall = time.perf_counter() - t0
    for p in work.iterdir():
        p.unlink()
    work.rmdir()

    n = sum(outcomes.values())
    print(f"\n{n} files, seed {args.seed}, {wall:.0f} s ({n / wall:.1f} files/s)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for title, table in (("per base file", per_base), ("per mutation", per_kind)):
        print(f"{title}:")
        for k in sorted(table):
            print(f"  {k:14s} " + ", ".join(f"{c} {v}" for c, v in sorted(table[k].items())))
    if wrapped:
        print("ReadErrors made of another library's exception (reason, count):")
        for k, v in wrapped.most_common(15):
            print(f"  {v:5d}  {k}")
    bad = sum(v for k, v in outcomes.items() if k.startswith(("FAIL", "HANG", "CRASH")))
    print(f"contract broken: {bad} of {n}")
    if args.out_json:
        args.out_json.write_text(json.dumps({
            "n_files": n, "seed": args.seed, "wall_s": round(wall, 1), "outcomes": outcomes,
            "per_base": per_base, "per_mutation": per_kind, "failures": failures,
            "wrapped_reasons": wrapped,
            "cpu": os.cpu_count(),
        }, indent=1, default=dict) + "\n")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
