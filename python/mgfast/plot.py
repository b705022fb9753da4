"""Vetting plots: nobody accepts an absorber catalogue without looking at the absorbers.

    fig = res.plot(i, flux, err=err)     # Detections.plot: one spectrum, every candidate
    mgfast plot catalog.fits -o gallery/ # a static gallery of a run's detections

Each figure shows what the network saw: the preprocessed spectrum on the grid (continuum-
normalised flux, its 1σ error, the continuum at 1 and masked pixels shaded), the whole spectrum
arm by arm with every candidate marked at both lines, and per absorber a panel in velocity around
λ2796 and λ2803 with both lines marked, and for a multi-absorber model the network's per-cell
probability map under the arms (Detector.cell_probabilities: where it saw an absorber's λ2796).
Needs matplotlib (``pip install "mgfast[plot]"``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import grid
from .atomic import C_KMS, MGII_2796, MGII_2803

VELOCITY_KMS = 800.0  # half-width of an absorber panel
MAX_PANELS = 4  # absorber panels per figure


@dataclass(frozen=True)
class Candidate:
    """One absorber to mark: λ2796 (Å), its probability and whether it is detected."""

    lambda2796: float
    probability: float
    detected: bool


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            'mgfast\'s plots need matplotlib: pip install "mgfast[plot]" (or matplotlib)'
        ) from None
    return plt


def _masked_spans(ax: Any, x: np.ndarray, masked: np.ndarray) -> None:
    """Shade the runs of masked pixels."""
    if not masked.any():
        return
    edges = np.flatnonzero(np.diff(np.r_[0, masked.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        ax.axvspan(x[a], x[b - 1], color="0.85", lw=0, zorder=0)


def figure(
    flux: np.ndarray,
    ivar: np.ndarray,
    pixmask: np.ndarray,
    candidates: Sequence[Candidate],
    title: str = "",
    cell_probability: np.ndarray | None = None,
) -> Any:
    """A vetting figure of one preprocessed spectrum (on the grid): the three arms with every
    candidate marked, the per-cell probability map under them when given (cells of 4 pixels),
    then up to MAX_PANELS velocity panels of the most probable candidates."""
    plt = _pyplot()
    wave = grid.wavelength()
    with np.errstate(divide="ignore"):
        err = np.where(ivar > 0, 1.0 / np.sqrt(np.maximum(ivar, 1e-30)), np.nan)
    masked = pixmask != 0
    shown = sorted(candidates, key=lambda c: -c.probability)[:MAX_PANELS]
    has_map = cell_probability is not None
    n_panels = (len(shown) + 1) // 2
    ratios = [1.0] + ([0.45] if has_map else []) + [1.0] * n_panels
    n_rows = len(ratios)
    fig = plt.figure(figsize=(12, 2.6 * sum(ratios)), layout="constrained")
    rows = fig.add_gridspec(n_rows, 1, height_ratios=ratios)
    top = rows[0].subgridspec(1, grid.N_ARMS)
    for k, arm in enumerate(grid.ARMS):
        ax = fig.add_subplot(top[k])
        s = arm.slice
        _masked_spans(ax, wave[s], masked[s])
        ax.step(wave[s], np.where(masked[s], np.nan, flux[s]), where="mid", lw=0.5, color="k")
        ax.step(wave[s], err[s], where="mid", lw=0.5, color="tab:orange")
        ax.axhline(1.0, color="tab:blue", lw=0.6)
        for c in candidates:
            for lam in (c.lambda2796, c.lambda2796 * MGII_2803.wavelength / MGII_2796.wavelength):
                if arm.lo <= lam <= arm.hi:
                    ax.axvline(lam, color="tab:red" if c.detected else "tab:gray", lw=0.8,
                               ls="-" if c.detected else ":")  # fmt: skip
        ax.set_xlim(arm.lo, arm.hi)
        ax.set_ylim(-0.2, 1.6)
        ax.set_xlabel(f"{arm.name} arm, λ (Å)")
        if k == 0:
            ax.set_ylabel("normalised flux")
    if has_map:
        cp = np.asarray(cell_probability, np.float64).ravel()
        centre = np.minimum(4 * np.arange(cp.size) + 1.5, grid.N_PIX - 1)  # a cell's middle
        lam_cell = grid.wavelength_of(centre)
        strip = rows[1].subgridspec(1, grid.N_ARMS)
        for k, arm in enumerate(grid.ARMS):
            ax = fig.add_subplot(strip[k])
            inside = (lam_cell >= arm.lo) & (lam_cell <= arm.hi)
            ax.fill_between(lam_cell[inside], cp[inside], step="mid", color="tab:purple", lw=0)
            ax.set_xlim(arm.lo, arm.hi)
            ax.set_ylim(0.0, 1.0)
            ax.tick_params(labelbottom=False)
            if k == 0:
                ax.set_ylabel("cell p", fontsize=8)
    first_panel = 2 if has_map else 1
    for j, c in enumerate(shown):
        cell = rows[first_panel + j // 2].subgridspec(1, 4)
        for m, line in enumerate((MGII_2796, MGII_2803)):
            ax = fig.add_subplot(cell[2 * (j % 2) + m])
            centre = c.lambda2796 * line.wavelength / MGII_2796.wavelength
            v = C_KMS * np.log(wave / centre)
            near = np.abs(v) <= VELOCITY_KMS
            _masked_spans(ax, v[near], masked[near])
            ax.step(v[near], np.where(masked[near], np.nan, flux[near]), where="mid", lw=0.8,
                    color="k")  # fmt: skip
            ax.step(v[near], err[near], where="mid", lw=0.6, color="tab:orange")
            ax.axhline(1.0, color="tab:blue", lw=0.6)
            ax.axvline(0.0, color="tab:red" if c.detected else "tab:gray", lw=0.8)
            ax.set_xlim(-VELOCITY_KMS, VELOCITY_KMS)
            ax.set_ylim(-0.2, 1.6)
            ax.set_xlabel(f"v (km/s) from {line.name}")
            if m == 0:
                z = c.lambda2796 / MGII_2796.wavelength - 1.0
                ax.set_title(f"z = {z:.5f}, p = {c.probability:.3f}", fontsize=9, loc="left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def candidates_of(res: Any, i: int) -> list[Candidate]:
    """The candidates of row i of a Detections (its absorbers for a multi-absorber model, else
    its one λ2796 when finite)."""
    if res.absorbers is not None:
        a = res.absorbers.select(res.absorbers.spectrum == i)
        t = res.absorber_threshold
        return [Candidate(float(lam), float(p), bool(p >= t))
                for lam, p in zip(a.lambda2796, a.probability, strict=True)]  # fmt: skip
    lam = float(np.atleast_1d(res.wavelength)[i])
    if not np.isfinite(lam):
        return []
    return [Candidate(lam, float(np.atleast_1d(res.probability)[i]),
                      bool(np.atleast_1d(res.detected)[i]))]  # fmt: skip


def _row(x: Any, i: int) -> Any:
    if x is None or np.ndim(x) <= 1:
        return x
    return np.asarray(x)[i]


def plot_detection(
    res: Any,
    i: int,
    flux: Any,
    wave: Any = None,
    err: Any = None,
    *,
    ivar: Any = None,
    mask: Any = None,
    normalised: bool = True,
    title: str | None = None,
) -> Any:
    """``Detections.plot``: the vetting figure of spectrum i, given the arrays given to detect
    (all rows, or row i alone)."""
    from .preprocess import preprocess

    n = len(res)
    if not 0 <= i < n:
        raise IndexError(f"spectrum {i}: the detections have {n} rows")
    many = np.ndim(flux) == 2

    def pick(x: Any) -> Any:
        return _row(x, i) if many else x

    pre = preprocess(
        pick(flux), pick(wave) if wave is not None and np.ndim(wave) == 2 else wave, pick(err),
        ivar=pick(ivar), mask=pick(mask), normalised=normalised, allow_empty=True,
    )  # fmt: skip
    p = float(np.atleast_1d(res.probability)[i])
    label = title if title is not None else f"spectrum {i}: p = {p:.3f}"
    model = res.model if res.absorbers is not None else None
    cp = _cell_probability(model, pre, res.model_sha256)
    return figure(pre.flux, pre.ivar, pre.pixmask, candidates_of(res, i), label, cp)


_DETECTORS: dict[str, Any] = {}


def _cell_probability(model: str | None, pre: Any, sha256: str | None = None) -> np.ndarray | None:
    """The per-cell probability map of a multi-absorber ``model`` (a shipped name or a
    directory) for one preprocessed spectrum; None without a model, when it cannot be loaded
    (a catalogue written elsewhere) or when it is not the model that made the results
    (``sha256``): the figure is then drawn without the map."""
    if not model:
        return None
    from .detector import Detector

    try:
        if model not in _DETECTORS:
            _DETECTORS[model] = Detector(model=model)
        det = _DETECTORS[model]
        if not det.multi_absorber or (sha256 and det.model.sha256 != sha256):
            return None
        cells: np.ndarray = det.cell_probabilities(pre.flux, pre.ivar, pre.pixmask)[0]
        return cells
    except (OSError, ValueError):
        return None


def gallery(
    catalogue: str | Path,
    out: str | Path,
    *,
    spectra: Sequence[str | Path] = (),
    everything: bool = False,
    limit: int | None = None,
    allow_low_resolution: bool = False,
) -> Path:
    """``mgfast plot``: a figure per detected spectrum of a catalogue (every row with
    ``everything``) in ``out``, and ``out/index.html``, a static gallery of thumbnails sortable
    by probability, each linking to its figure. Spectra are read again from the catalogue's
    ``file`` column (or, where that path is gone, from a file of the same name in ``spectra``
    directories). Returns the page's path."""
    from . import io
    from .preprocess import preprocess
    from .results import Catalog

    plt = _pyplot()
    cat = Catalog.read(catalogue)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = np.arange(len(cat)) if everything else np.flatnonzero(cat.detected)
    order = rows[np.argsort(-cat.probability[rows], kind="stable")]
    if limit is not None:
        order = order[:limit]
    search = [Path(p) for p in spectra]

    def locate(f: str) -> str:
        if os.path.exists(f):
            return f
        for d in search:
            if (d / Path(f).name).exists():
                return str(d / Path(f).name)
        raise FileNotFoundError(f"{f}: not found (give its directory with --spectra)")

    cache: dict[str, list[Any]] = {}

    def spectrum(file: str, index: int) -> Any:
        """The catalogue row's spectrum, read again (per-arm files combined as detect did)."""
        parts = file.split(";")
        if file not in cache:
            paths = [locate(f) for f in parts]
            read = [io.read(p, allow_low_resolution=allow_low_resolution) for p in paths]
            cache[file] = read[0] if len(paths) == 1 else [
                io.combine_arms([r[0] for r in read], paths)[0]]  # fmt: skip
        return cache[file][index if len(parts) == 1 else 0]

    a = cat.absorbers
    entries: list[_Entry] = []
    problems: list[str] = []
    for k, r in enumerate(order):
        file, index = str(cat.columns["file"][r]), int(cat.columns["index"][r])
        sid = str(cat.columns["id"][r])
        try:
            s = spectrum(file, index)
            pre = preprocess(
                s.flux, s.wave, s.err, ivar=s.ivar, mask=s.mask, resolution=s.resolution,
                normalised=s.normalised, allow_empty=True,
            )  # fmt: skip
        except Exception as e:  # a figure that cannot be made is listed, not fatal
            problems.append(f"{sid}: {' '.join(str(e).split())}")
            continue
        if a is not None:
            mine = a["spectrum"] == r
            cols = (a["lambda2796"][mine], a["probability"][mine], a["detected"][mine])
            cands = [Candidate(float(x), float(q), bool(d)) for x, q, d in zip(*cols, strict=True)]
        else:
            lam = float(cat.columns["lambda2796"][r])
            ok = np.isfinite(lam)
            cands = [Candidate(lam, float(cat.probability[r]), bool(cat.detected[r]))] if ok else []
        p = float(cat.probability[r])
        z = float(cat.columns["z_abs"][r])
        model = str(cat.meta.get("model") or "") if a is not None else None
        cp = _cell_probability(model, pre, str(cat.meta.get("model_sha256") or ""))
        fig = figure(pre.flux, pre.ivar, pre.pixmask, cands, f"{sid} ({file}): p = {p:.3f}", cp)
        name = f"{k:05d}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        entries.append((name, sid, file, p, z, len(cands)))
    page = out / "index.html"
    page.write_text(
        _html(entries, problems, str(catalogue)), encoding="ascii", errors="xmlcharrefreplace"
    )
    return page


# A gallery row: figure file name, spectrum id, its file, probability, z_abs, candidates.
_Entry = tuple[str, str, str, float, float, int]


def _html(entries: list[_Entry], problems: list[str], catalogue: str) -> str:
    e = html.escape
    rows = "\n".join(
        f'<tr data-p="{p:.6f}"><td><a href="{name}"><img src="{name}" width="480"></a></td>'
        f"<td>{e(sid)}</td><td>{p:.4f}</td><td>{z:.5f}</td><td>{n}</td><td>{e(file)}</td></tr>"
        for name, sid, file, p, z, n in entries
    )
    issues = "".join(f"<li>{e(x)}</li>" for x in problems)
    return f"""<!DOCTYPE html>
<html><head><meta charset="ascii"><title>mgfast: {e(catalogue)}</title>
<style>body{{font-family:sans-serif}} td{{padding:4px;vertical-align:middle}}
th{{cursor:pointer;text-align:left}}</style></head><body>
<h1>mgfast vetting gallery</h1><p>Catalogue {e(catalogue)}: {len(entries)} spectra, most probable
first. Click a thumbnail for the full figure; click "probability" to sort.</p>
{f"<p>Figures that could not be made:</p><ul>{issues}</ul>" if problems else ""}
<table id="t"><thead><tr><th>figure</th><th>id</th><th onclick="sortp()">probability</th>
<th>z_abs</th><th>candidates</th><th>file</th></tr></thead><tbody>
{rows}
</tbody></table>
<script>
var up = false;
function sortp() {{
  var b = document.querySelector("#t tbody"), r = Array.from(b.rows);
  up = !up;
  r.sort(function (x, y) {{ return (x.dataset.p - y.dataset.p) * (up ? 1 : -1); }});
  r.forEach(function (x) {{ b.appendChild(x); }});
}}
</script></body></html>
"""


__all__ = ["Candidate", "candidates_of", "figure", "gallery", "plot_detection"]
