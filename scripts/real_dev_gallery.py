"""The real development spectra (../shared/data/real_dev.npz) as a survey would meet them: written
as ESO Phase 3 SDP files, searched with `mgfast detect` (the shipped multi-absorber model, so the
catalogue has its absorber table; the quasars' redshifts through --zem), and drawn with
`mgfast plot`; optionally the gallery page rendered by headless Chromium to a screenshot.

    python scripts/real_dev_gallery.py --out docs/figures/real-dev-gallery \
        [--screenshot docs/figures/real-dev-gallery.png]

Evaluation only: nothing here is tuned on these spectra.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from mgfast.cli import main as mgfast_main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_dev.npz"


def write_sdp(path: Path, name: str, wave: np.ndarray, flux: np.ndarray, err: np.ndarray) -> None:
    """One ESO SDP 1D file: a header-only primary HDU, one row of array columns."""
    import fitsio

    n = wave.size
    rec = np.zeros(1, dtype=[("WAVE", "f8", (n,)), ("FLUX", "f4", (n,)), ("ERR", "f4", (n,))])
    rec["WAVE"][0], rec["FLUX"][0], rec["ERR"][0] = wave, flux, err
    primary = [
        {"name": "PRODCATG", "value": "SCIENCE.SPECTRUM"},
        {"name": "OBJECT", "value": name},
    ]
    with fitsio.FITS(str(path), "rw", clobber=True) as f:
        f.write(None, header=primary)
        f.write(rec, extname="SPECTRUM", units=["Angstrom", "adu", "adu"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", required=True, help="directory for the catalogue, figures and page")
    p.add_argument("--model", default="multi")
    p.add_argument("--screenshot", help="render index.html with headless Chromium to this PNG")
    args = p.parse_args()
    d = np.load(os.path.abspath(args.data), allow_pickle=False)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    out = out.resolve()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the catalogue names the files as given: sdp/NAME.fits
        try:
            Path("sdp").mkdir()
            for i, name in enumerate(d["names"]):
                stem = "".join(c if c.isalnum() else "_" for c in str(name))
                write_sdp(Path("sdp") / f"{i}_{stem}.fits", str(name), d["wave"], d["flux"][i],
                          d["err"][i])  # fmt: skip
            names = sorted((f.name for f in Path("sdp").iterdir()), key=lambda n: int(n[0]))
            pairs = zip(names, d["z_em"], strict=True)
            lines = ["file,z_em", *(f"{n},{float(z)}" for n, z in pairs)]
            Path("zem.csv").write_text("\n".join(lines) + "\n")
            cat = out / "catalog.fits"
            rc = mgfast_main(["detect", "sdp", "-o", str(cat), "--model", args.model,
                              "--zem", "zem.csv"])  # fmt: skip
            if rc not in (0, 3):
                raise SystemExit(f"mgfast detect failed ({rc})")
            rc = mgfast_main(["plot", str(cat), "-o", str(out), "--all"])
            if rc:
                raise SystemExit(f"mgfast plot failed ({rc})")
        finally:
            os.chdir(here)
    if args.screenshot:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise SystemExit("--screenshot needs chromium (apt install chromium)")
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={Path(args.screenshot).resolve()}", "--window-size=1300,2200",
             (out / "index.html").resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        print(f"wrote {args.screenshot}")


if __name__ == "__main__":
    main()
