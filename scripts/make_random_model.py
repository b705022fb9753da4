"""Write a model directory (model.onnx + model.json) with random He-initialised weights.

python scripts/make_random_model.py OUT_DIR [--arch bycycle2023] [--seed 0] [--conv2d]
    [--channels flux,whitened,log_snr]

Same shapes and cost as a trained model ("trained": false in model.json), for building and
timing the backends before a trained model exists. The graph is built directly with
onnx.helper (mgfast.model.build_onnx), no TensorFlow needed; about 31 MB for the paper's
network, so generate it where needed rather than committing it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mgfast import model as mm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="model directory to write")
    p.add_argument("--arch", default="bycycle2023", choices=sorted(mm.ARCHITECTURES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--conv2d",
        action="store_true",
        help="2-D convolutions of height 1 (what tf2onnx emits for Keras Conv1D)",
    )
    p.add_argument(
        "--channels",
        default="flux",
        help="input channels, flux first (mgfast.model.INPUT_CHANNELS; the FCN architectures)",
    )
    args = p.parse_args()
    t0 = time.perf_counter()
    d = mm.write_random_model(
        args.out, args.arch, args.seed, conv2d=args.conv2d, channels=args.channels
    )
    m = mm.load_model(d)
    print(
        f"{d}: {m.architecture} on {','.join(m.input_channels)}, {m.n_parameters:,} parameters, "
        f"{m.flops_per_spectrum / 1e9:.3f} GFLOP per spectrum, "
        f"{(d / 'model.onnx').stat().st_size / 1e6:.1f} MB, sha256 {m.sha256[:12]}…, "
        f"{time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
