"""The model directory: model.onnx and model.json, their writer (save_model) and loader
(load_model, Model)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core, grid
from ..absorbers import ErrorModel
from .onnx_read import read_fcn_onnx, read_onnx
from .onnx_write import build_onnx, random_weights
from .spec import (
    ARCHITECTURES,
    FCN_ARCHITECTURES,
    FCN_CELL,
    FLUX_ONLY,
    FORMAT,
    FORMAT_VERSION,
    MAX_JSON_BYTES,
    MULTI_MAPS,
    MULTI_OUTPUT,
    Conv1d,
    Dense,
    Heads,
    Heatmap,
    Layer,
    architecture_specs,
    check_channels,
    flops_per_spectrum,
    input_name,
)


def grid_metadata() -> dict[str, Any]:
    """The grid as model.json records it."""
    return {
        "n_pix": grid.N_PIX,
        "dlnlambda": grid.DLNLAMBDA,
        "arms": [
            {"name": a.name, "lo": a.lo, "hi": a.hi, "start": a.start, "stop": a.stop}
            for a in grid.ARMS
        ],
    }


def save_model(
    directory: str | Path,
    onnx_model: Any,
    architecture: str,
    *,
    trained: bool,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    thresholds: dict[str, float] | None = None,
    calibration: tuple[np.ndarray, np.ndarray] | None = None,
    sigma_scale: dict[str, float] | None = None,
    input_channels: Sequence[str] | None = None,
) -> Path:
    """Write model.onnx and model.json (with the ONNX file's SHA-256) into directory;
    ``calibration``: mgfast_multi's score-to-probability curve (x, y); ``input_channels``: what
    the network reads (input_features; None: the flux alone, and model.json then has no
    input.channels, as every model before issue 16)."""
    import onnx

    architecture_specs(architecture)
    channels = check_channels(input_channels)
    inp: dict[str, Any] = {"name": input_name(channels)}
    if channels != FLUX_ONLY:
        inp["channels"] = list(channels)
    inp["normalisation"] = {"kind": "none"}
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    onnx_path = d / "model.onnx"
    onnx.save_model(onnx_model, onnx_path)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "grid": grid_metadata(),
        "input": inp,
        "outputs": _output_descriptions(architecture),
        "thresholds": dict(thresholds or {"default": 0.5}),
        "trained": trained,
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "mgfast_version": _core.__version__,
        "onnx_sha256": file_sha256(onnx_path),
    }
    if calibration is not None:
        meta["calibration"] = {
            "kind": "isotonic, piecewise linear",
            "x": [float(v) for v in calibration[0]],
            "y": [float(v) for v in calibration[1]],
        }
        if sigma_scale:
            meta["calibration"]["sigma_scale"] = {k: float(v) for k, v in sigma_scale.items()}
    (d / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return d


def _output_descriptions(architecture: str) -> dict[str, str]:
    fcn = {
        "cell_logits": f"logit per {FCN_CELL}-pixel cell",
        "cell_offsets": "λ2796 pixel within the cell",
        "none_logit": "logit of 'no absorber', softmaxed with the cell logits",
    }
    multi = {
        MULTI_OUTPUT: f"(N, cells, {MULTI_MAPS}) per {FCN_CELL}-pixel cell: logit, "
        "offset, ln b(offset), ln EW2796, ln σ, ln EW2803, ln σ (mgfast.absorbers)"
    }
    if architecture == "mgfast_fcn":
        return fcn
    if architecture == "mgfast_multi":
        return multi
    if architecture == "mgfast_dual":
        return fcn | multi
    return {"probability": "sigmoid, 0-1", "lambda2796": "observed-frame Å"}


def write_random_model(
    directory: str | Path,
    architecture: str = "bycycle2023",
    seed: int = 0,
    *,
    conv2d: bool = False,
    channels: Sequence[str] | None = None,
) -> Path:
    """A model directory with random He-initialised weights ("trained": false): same shapes and
    cost as a trained model, for building and timing the backends before one exists.
    ``channels``: its input channels (input_features; None: the flux alone)."""
    onnx_model = build_onnx(
        architecture,
        random_weights(architecture, seed, channels=channels),
        conv2d=conv2d,
        channels=channels,
    )
    return save_model(
        directory,
        onnx_model,
        architecture,
        trained=False,
        training={"init": "he_normal (untruncated), zero biases", "seed": seed},
        input_channels=channels,
    )


# --- Loading. --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A loaded model: its metadata and its layers (weights as contiguous float32 arrays)."""

    path: Path
    architecture: str
    n_pix: int
    layers: tuple[Layer, ...]
    thresholds: dict[str, float]
    trained: bool
    sha256: str
    metadata: dict[str, Any] = field(repr=False)

    @property
    def onnx_path(self) -> Path:
        return self.path / "model.onnx"

    @property
    def input_channels(self) -> tuple[str, ...]:
        """What the network reads (input_features): ("flux",) for the one-channel models,
        model.json's input.channels otherwise."""
        inp = self.metadata.get("input")
        return check_channels(inp.get("channels") if isinstance(inp, dict) else None)

    @property
    def reads_noise(self) -> bool:
        """Whether the network reads more than the flux (then it needs ivar beside it)."""
        return self.input_channels != FLUX_ONLY

    @property
    def calibration(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The score-to-probability curve (x, y): mgfast_multi's for its absorbers, mgfast_fcn's
        for its per-spectrum probability; None when the model has none."""
        c = self.metadata.get("calibration")
        if not isinstance(c, dict):
            return None
        return np.asarray(c["x"], np.float64), np.asarray(c["y"], np.float64)

    @property
    def sigma_scale(self) -> dict[str, float] | None:
        """mgfast_multi's factors on its stated uncertainties (68 % coverage), or None."""
        c = self.metadata.get("calibration")
        scale = c.get("sigma_scale") if isinstance(c, dict) else None
        return {k: float(v) for k, v in scale.items()} if isinstance(scale, dict) else None

    @functools.cached_property
    def error_model(self) -> ErrorModel | None:
        """Corrections to the catalogue's stated errors (mgfast.absorbers.ErrorModel), or None."""
        c = self.metadata.get("calibration")
        e = c.get("error_model") if isinstance(c, dict) else None
        return None if e is None else ErrorModel.from_json(e)

    @property
    def flops_per_spectrum(self) -> float:
        return flops_per_spectrum(self.layers, self.n_pix)

    @property
    def n_parameters(self) -> int:
        return sum(
            layer.weight.size + layer.bias.size
            for layer in self.layers
            if isinstance(layer, Conv1d | Dense | Heads | Heatmap)
        )


def load_model(path: str | Path) -> Model:
    """Read and check a model directory (model.onnx + model.json).

    Raises FileNotFoundError when a file is missing and ValueError when the model is corrupt
    (SHA-256 mismatch, unreadable ONNX), made for another grid, of an unknown architecture, or
    when its graph does not match the architecture model.json names.
    """
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"model {d}: no such directory (expected model.onnx + model.json)")
    json_path, onnx_path = d / "model.json", d / "model.onnx"
    for p in (json_path, onnx_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"model {d}: {p.name} is missing (a model is model.onnx + model.json)"
            )
    if json_path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{json_path}: larger than {MAX_JSON_BYTES} bytes, not a model.json")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f'{json_path}: not an mgfast model.json (expected "format": "{FORMAT}")')
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{json_path}: format_version {version!r}, this mgfast reads {FORMAT_VERSION}; "
            "upgrade mgfast or re-export the model"
        )
    arch = meta.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{json_path}: unknown architecture {arch!r}; this mgfast knows "
            f"{', '.join(sorted(ARCHITECTURES))}"
        )
    _check_grid(meta.get("grid"), json_path)
    inp = meta.get("input")
    norm = inp.get("normalisation") if isinstance(inp, dict) else None
    norm = norm.get("kind") if isinstance(norm, dict) else norm
    if norm != "none":
        raise ValueError(
            f"{json_path}: input normalisation {norm!r} is not supported (only 'none')"
        )
    raw_channels = inp.get("channels") if isinstance(inp, dict) else None
    try:
        if raw_channels is not None and not isinstance(raw_channels, list):
            raise ValueError(f"input channels {raw_channels!r}: expected a list of names")
        channels = check_channels(raw_channels)
    except ValueError as e:
        raise ValueError(f"{json_path}: {e}") from None
    if channels != FLUX_ONLY and arch not in FCN_ARCHITECTURES:
        raise ValueError(f"{json_path}: architecture {arch!r} reads the flux alone, not {channels}")
    thresholds = meta.get("thresholds")
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) and 0 <= v <= 1 for v in thresholds.values()
    ):
        raise ValueError(f"{json_path}: thresholds must map names to numbers in 0-1")
    if "default" not in thresholds:
        raise ValueError(f"{json_path}: thresholds.default missing (expected a number in 0-1)")

    digest = file_sha256(onnx_path)
    if digest != meta.get("onnx_sha256"):
        raise ValueError(
            f"{onnx_path}: SHA-256 {digest} does not match model.json's "
            f"{meta.get('onnx_sha256')!r}: the file is truncated, corrupt or not this model's"
        )
    if arch in FCN_ARCHITECTURES:
        layers = read_fcn_onnx(onnx_path, arch, channels)
    else:
        layers = read_onnx(onnx_path, arch)
    cal = meta.get("calibration")
    if cal is not None and not (
        isinstance(cal, dict)
        and isinstance(cal.get("x"), list)
        and isinstance(cal.get("y"), list)
        and len(cal["x"]) == len(cal["y"]) >= 2
        and all(isinstance(v, int | float) for v in cal["x"] + cal["y"])
    ):
        raise ValueError(f"{json_path}: calibration must hold lists x and y of equal length")
    model = Model(
        path=d,
        architecture=arch,
        n_pix=grid.N_PIX,
        layers=tuple(layers),
        thresholds={k: float(v) for k, v in thresholds.items()},
        trained=bool(meta.get("trained", False)),
        sha256=digest,
        metadata=meta,
    )
    try:
        model.error_model  # noqa: B018  (parsed now, once: a malformed one is refused at load)
    except ValueError as e:
        raise ValueError(f"{json_path}: {e}") from None
    return model


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_grid(g: Any, where: Path) -> None:
    want = grid_metadata()
    if not isinstance(g, dict):
        raise ValueError(f"{where}: no grid definition (expected n_pix {want['n_pix']} and arms)")
    diffs = []
    if g.get("n_pix") != want["n_pix"]:
        diffs.append(f"n_pix {g.get('n_pix')!r} (mgfast.grid: {want['n_pix']})")
    step = g.get("dlnlambda")
    if (
        not isinstance(step, int | float)
        or abs(step - want["dlnlambda"]) > 1e-9 * want["dlnlambda"]
    ):
        diffs.append(f"dlnlambda {step!r} (mgfast.grid: {want['dlnlambda']!r})")
    arms = g.get("arms")
    if not isinstance(arms, list) or len(arms) != len(want["arms"]):
        diffs.append(f"arms {arms!r} (mgfast.grid: {len(want['arms'])} arms)")
    else:
        for a, w in zip(arms, want["arms"], strict=True):
            for k, v in w.items():
                got = a.get(k) if isinstance(a, dict) else None
                same = (
                    isinstance(got, int | float) and abs(got - v) <= 1e-6 * abs(v)
                    if isinstance(v, float)
                    else got == v
                )
                if not same:
                    diffs.append(f"arm {w['name']} {k} {got!r} (mgfast.grid: {v!r})")
    if diffs:
        raise ValueError(
            f"{where}: the model was made for another spectral grid: {'; '.join(diffs)}. "
            "Use a model exported for this mgfast's grid"
        )
