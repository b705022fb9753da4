"""The Detector: spectra in, MgII detections out (DESIGN.md's public contract).

    det = mgfast.Detector()                          # the shipped model, backend "auto"
    det = mgfast.Detector(method="matched-filter")   # the classical baseline, no model needed
    res = det.detect(flux)                           # on the grid, normalised
    res = det.detect(flux, wave=wave, err=err, normalised=False)   # anything else: preprocessed
    res.probability, res.wavelength, res.redshift, res.detected; res.to_table(); res.write(path)

Every spectrum in gives one row out, in order. A spectrum with no usable pixel is not an error
here (one bad spectrum must not stop a survey): its row has probability 0, NaN wavelength and the
ALL_MASKED flag.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core, grid
from . import ew as ew_mod
from .absorbers import Absorbers, decode_absorbers, lift_by_summary
from .atomic import C_KMS, MGII_2796, MGII_2803
from .flags import (
    ASSOCIATED_KMS,
    EDGE_PIXELS,
    LOW_SNR_LIMIT,
    LYA_REST,
    NORMALISED_MEDIAN_RANGE,
    DetectionFlag,
    NormalisationWarning,
    PixelFlag,
    SpectrumFlag,
)
from .preprocess import preprocess
from .results import _EW_COLUMNS, Catalog, Detections

DEFAULT_MODEL = "default"  # python/mgfast/models/default: model.onnx + model.json


def default_model_path() -> Path:
    return Path(str(resources.files("mgfast") / "models" / DEFAULT_MODEL))


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package ("default", "multi", ...)."""
    root = Path(str(resources.files("mgfast") / "models"))
    return sorted(d.name for d in root.iterdir() if (d / "model.json").exists())


def resolve_model(model: str | Path | None) -> Path:
    """A model directory: a path, or the name of a shipped model; None is the default model.
    A name that is neither an existing directory nor a shipped model is left to load_model
    (whose error says the directory does not exist)."""
    if model is None:
        return default_model_path()
    p = Path(model)
    if not p.exists() and isinstance(model, str) and model in shipped_models():
        return Path(str(resources.files("mgfast") / "models" / model))
    return p


def _check_threshold(name: str, value: float | None, probability: bool = True) -> float | None:
    """A threshold as a float: in [0, 1] for a probability, finite and >= 0 otherwise."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if probability and not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: a probability threshold must lie in [0, 1], got {value!r}")
    if not probability and not (np.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name}: a significance threshold must be finite and >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class StreamResult:
    """One batch of a stream: its input IDs, and its Detections or why the batch failed."""

    ids: np.ndarray
    detections: Detections | None
    error: str | None = None


_DETECT_ARGS = ("wave", "err", "ivar", "mask", "resolution", "normalised")


def _stream_item(item: Any, start: int) -> tuple[dict[str, Any], np.ndarray]:
    """A stream's batch as detect()'s keyword arguments, and its IDs."""
    if isinstance(item, Mapping):
        if "flux" not in item:
            raise ValueError("detect_stream: a batch given as a mapping needs a 'flux' entry")
        unknown = set(item) - {"flux", "ids", *_DETECT_ARGS}
        if unknown:
            raise ValueError(f"detect_stream: unknown batch entries {sorted(unknown)}")
        kwargs = {k: item[k] for k in ("flux", *_DETECT_ARGS) if k in item}
        ids = item.get("ids")
    elif hasattr(item, "flux"):
        kwargs = {"flux": item.flux, "err": getattr(item, "err", None)}
        ids = None
    else:
        kwargs, ids = {"flux": item}, None
    n = 1 if np.ndim(kwargs["flux"]) == 1 else int(np.shape(kwargs["flux"])[0])
    ids = np.arange(start, start + n) if ids is None else np.atleast_1d(np.asarray(ids))
    if len(ids) != n:
        raise ValueError(f"detect_stream: {len(ids)} ids for a batch of {n} spectra")
    return kwargs, ids


def _split_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mgfast_multi's (N, cells, 7) output to logits (N, cells) and maps (N, cells, 6)."""
    return maps[:, :, 0], maps[:, :, 1:]


class Detector:
    """Finds MgII absorbers: a trained network (default) or the doublet matched filter.

    Parameters
    ----------
    model : path of a model directory (model.onnx + model.json), or the name of a shipped model
        ("default"; "multi", every absorber in a sightline); default: the shipped default model
    backend : "auto" | "cpu" | "cuda" | "cuda:N". "cuda" runs the network with the GPU engine
        (cuDNN + cuBLAS, mgfast.engine.GpuBackend); preprocessing and decoding stay on the CPU.
        "auto" is the CPU backend until the GPU engine has been verified on a GPU
        (docs/BENCHMARKS.md says what awaits one).
    method : "network" | "matched-filter"
    batch_size : spectra per backend call: default 16 on the CPU, 1024 on a GPU
    threads : CPU threads (preprocessing; the CPU backend)
    precision : "fp32"; "bf16" on the CPU (CPUs with AVX512-BF16 or AMX), "fp16" on a GPU;
        both accumulate in fp32
    threshold : detection threshold, in [0, 1] for a network; default: the model's (model.json)
        or the filter's (a significance, >= 0)
    absorber_threshold : multi-absorber models: the probability an absorber needs to count, in
        [0, 1]; default: the model's. A multi-absorber model's spectrum row is the summary of its
        absorbers (detected exactly when one reaches this threshold; λ2796, z and EWs those of
        its most probable absorber), so for these models one threshold decides both: give
        either, or both equal (ValueError otherwise). Single-absorber models: ValueError.
    ew : multi-absorber models: "combined" (default) measures each absorber's EWs on the
        preprocessed spectrum and combines them with the network's (mgfast.ew); "network" keeps
        the network's alone. Spectra given as GPU arrays get the network's (the preprocessed
        spectra stay on the device).
    chunk_size : ``detect`` on more host spectra than this works through them this many at a
        time (the results are the same as in one call): its working memory is that of one chunk
        (about 100 kB per spectrum), not of the whole array. Default 2048.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "auto",
        method: Literal["network", "matched-filter"] = "network",
        batch_size: int | None = None,
        threads: int = 0,
        threshold: float | None = None,
        precision: Literal["fp32", "bf16", "fp16"] = "fp32",
        ew: Literal["combined", "network"] = "combined",
        absorber_threshold: float | None = None,
        chunk_size: int = 2048,
    ) -> None:
        from .engine import CPU_PRECISIONS, GPU_PRECISIONS, cuda_index

        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
        self.chunk_size = chunk_size

        if method not in ("network", "matched-filter"):
            raise ValueError(f"method: expected 'network' or 'matched-filter', got {method!r}")
        network = method == "network"
        threshold = _check_threshold("threshold", threshold, probability=network)
        absorber_threshold = _check_threshold("absorber_threshold", absorber_threshold)
        if ew not in ("combined", "network"):
            raise ValueError(f"ew: expected 'combined' or 'network', got {ew!r}")
        self.ew = ew
        on_gpu = isinstance(backend, str) and backend.startswith("cuda")
        try:
            if on_gpu:
                cuda_index(backend)
            elif backend not in ("auto", "cpu"):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"backend: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {backend!r}"
            ) from None
        allowed = GPU_PRECISIONS if on_gpu else CPU_PRECISIONS
        if precision not in allowed:
            raise ValueError(
                f"precision: expected one of {allowed} with backend {backend!r}, got {precision!r}"
            )
        if batch_size is None:
            batch_size = 1024 if on_gpu else 16
        self.method = method
        self.threads = threads
        # What it takes to build this Detector again (in a dask worker, say).
        self.config: dict[str, object] = {
            "model": None if model is None else str(resolve_model(model).resolve()),
            "backend": backend, "method": method, "batch_size": batch_size, "threads": threads,
            "threshold": threshold, "precision": precision, "ew": ew,
            "absorber_threshold": absorber_threshold, "chunk_size": chunk_size,
        }  # fmt: skip
        self._backend = None
        self.model = None
        self.model_name: str | None = None
        self.absorber_threshold: float | None = None
        if method == "matched-filter":
            from .matched_filter import DEFAULT_THRESHOLD

            if absorber_threshold is not None:
                raise ValueError("absorber_threshold: the matched filter finds one absorber per "
                                 "spectrum; use threshold")  # fmt: skip
            self.threshold = float(DEFAULT_THRESHOLD if threshold is None else threshold)
            return
        from .engine import CpuBackend, GpuBackend
        from .model import load_model

        path = resolve_model(model)
        if model is None and not (path / "model.json").exists():
            raise FileNotFoundError(
                f"no model was given and the shipped default model is missing at {path}; "
                "pass model='path/to/model' or method='matched-filter'"
            )
        self.model = load_model(path)
        self.model_name = model if isinstance(model, str) and model in shipped_models() else (
            DEFAULT_MODEL if model is None else str(path)
        )  # fmt: skip
        if on_gpu:
            self._backend = GpuBackend(
                self.model, device=backend if ":" in backend else "cuda:0",
                batch_size=batch_size, precision=precision,
            )  # fmt: skip
        else:
            self._backend = CpuBackend(
                self.model, threads=threads, batch_size=batch_size, precision=precision
            )
        if not self._backend.map_output:
            if absorber_threshold is not None:
                raise ValueError(
                    f"absorber_threshold: model {path.name!r} finds one absorber per spectrum "
                    "(it has no absorber list); use threshold, or a multi-absorber model"
                )
            self.threshold = float(
                self.model.thresholds.get("default", 0.5) if threshold is None else threshold
            )
            return
        # Multi-absorber models: the spectrum row summarises the absorbers, so that one
        # threshold decides both (the model's "absorber" threshold unless one is given).
        if None not in (threshold, absorber_threshold) and threshold != absorber_threshold:
            raise ValueError(
                f"threshold {threshold:g} and absorber_threshold {absorber_threshold:g}: a "
                "multi-absorber model's spectrum row is the summary of its absorbers (detected "
                "when one reaches the absorber threshold), so give one of them, or both equal"
            )
        given = threshold if absorber_threshold is None else absorber_threshold
        t = self.model.thresholds.get("absorber", 0.5) if given is None else given
        self.threshold = self.absorber_threshold = float(t)

    @property
    def multi_absorber(self) -> bool:
        """Whether the model reports every absorber (mgfast_multi): then Detections carry
        ``absorbers`` and ``n_absorbers``, and catalogues an absorber table."""
        return self._backend is not None and bool(self._backend.map_output)

    def detect(
        self,
        flux: npt.ArrayLike,
        wave: npt.ArrayLike | None = None,
        err: npt.ArrayLike | None = None,
        *,
        ivar: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
        resolution: float | npt.ArrayLike | None = None,
        normalised: bool = True,
        z_em: float | npt.ArrayLike | None = None,
    ) -> Detections:
        """Detect MgII in spectra: (N, n) or one spectrum of n pixels; any wavelength grid when
        ``wave`` is given (then preprocessed onto mgfast.grid), the grid itself otherwise.

        ``z_em``: the quasars' emission redshifts (one for all, or one per spectrum; NaN where
        unknown). Then nothing is searched where no MgII can be: pixels redward of λ2803 at
        ASSOCIATED_KMS above z_em are masked (PixelFlag.BEYOND_ZEM), and the row and each
        absorber get DetectionFlag.IN_FOREST (λ2796 in the Lyα forest) and ASSOCIATED (within
        ASSOCIATED_KMS of z_em). Host arrays only.

        With a GPU backend, spectra already on the GPU (CuPy, PyTorch, ... arrays exposing
        ``__cuda_array_interface__``; float32, on the grid; err/ivar float32 and mask uint32
        likewise on the GPU) are preprocessed and run there without a copy to the host: only
        the results come back (GpuBackend.detect_device)."""
        single = np.ndim(flux) == 1
        on_gpu = _on_gpu(flux)
        if not single and not on_gpu and len(flux) > self.chunk_size:  # type: ignore[arg-type]
            return self._detect_chunks(
                flux, wave, err, ivar=ivar, mask=mask, resolution=resolution,
                normalised=normalised, z_em=z_em,
            )  # fmt: skip
        if z_em is not None and on_gpu:
            raise ValueError("z_em: not supported for spectra given as GPU arrays (pass NumPy)")
        if on_gpu:
            flags, n_masked, snr, pixmask, out = self._device_stages(
                flux, wave, err, ivar, mask, resolution, normalised
            )
        else:
            pre = preprocess(
                flux, wave, err, ivar=ivar, mask=mask, resolution=resolution,
                normalised=normalised, allow_empty=True, threads=self.threads,
            )  # fmt: skip
            flags, n_masked = np.atleast_1d(pre.flags), np.atleast_2d(pre.n_masked)
            ivar2, pixmask = np.atleast_2d(pre.ivar), np.atleast_2d(pre.pixmask)
            flux2 = np.atleast_2d(pre.flux)
            zem = _check_z_em(z_em, len(flags))
            if zem is not None:
                n_masked = _mask_beyond_z_em(zem, flux2, ivar2, pixmask)
            snr = _median_snr(ivar2, self.threads)
            # the EW measurement's weights, and those of a network that reads the noise: spectra
            # without errors get them from their scatter
            ivar_ew = ew_mod.scatter_ivar(flux2, ivar2, pixmask)
            out = self._host_outputs(flux2, ivar2, ivar_ew)
        score, lam, sha, absorbers, n_abs = self._decode(out, len(flags))
        if absorbers is not None and self.ew == "combined" and not on_gpu:
            absorbers = ew_mod.apply(absorbers, flux2, ivar_ew, threads=self.threads)
        if absorbers is not None and self.model is not None and self.model.error_model:
            absorbers = self.model.error_model.apply(absorbers, snr)
        empty = (flags & int(SpectrumFlag.ALL_MASKED)) != 0
        if absorbers is not None:  # nothing is found in a spectrum without a usable pixel
            absorbers = absorbers.select(~empty[absorbers.spectrum])
            n_abs = np.where(empty, 0, n_abs)
        score = np.where(empty, 0.0, score).astype(np.float32)
        # a multi-absorber model's row is detected exactly when it has an absorber
        detected = score >= self.threshold if n_abs is None else n_abs > 0
        # λ2796 only where it points into the arms; a "no absorber" label is not a wavelength.
        lam = np.where(np.isfinite(grid.pixel_of(lam)) & ~empty, lam, np.nan)
        flags = flags | _quality(snr, pixmask, lam)
        zem = None if on_gpu else _check_z_em(z_em, len(flags))
        if zem is not None:
            flags = flags | _z_em_flags(lam, zem)
            if absorbers is not None:
                af = absorbers.flags | _z_em_flags(absorbers.lambda2796, zem[absorbers.spectrum])
                absorbers = Absorbers(**{**absorbers.columns(), "flags": af})
        if normalised and not on_gpu:
            flags = flags | _check_normalised(flux2, pixmask)
        masked = n_masked.sum(axis=1) / grid.N_PIX
        if absorbers is not None:  # the row's EWs: those of its most probable absorber
            ews = _best_absorber_ews(absorbers, detected)
        else:
            ews = {} if on_gpu else _summary_ews(flux2, ivar_ew, lam, detected, self.threads)
        res = Detections(
            probability=score, wavelength=lam, redshift=lam / MGII_2796.wavelength - 1.0,
            detected=detected, flags=flags, masked_fraction=masked.astype(np.float32), snr=snr,
            z_em=zem,
            threshold=self.threshold, method=self.method, model_sha256=sha, model=self.model_name,
            absorbers=absorbers, n_absorbers=n_abs,
            absorber_threshold=self.absorber_threshold if absorbers is not None else None, **ews,
        )  # fmt: skip
        if single:
            return Detections(**{
                k: (v[0] if isinstance(v, np.ndarray) else v) for k, v in res.__dict__.items()
            })  # fmt: skip
        return res

    def cell_probabilities(
        self, flux: npt.ArrayLike, ivar: npt.ArrayLike | None = None,
        pixmask: npt.ArrayLike | None = None,
    ) -> np.ndarray:  # fmt: skip
        """A multi-absorber model's map for preprocessed spectra on the grid ((N, n_pix), as
        ``mgfast.preprocess`` gives them): per 4-pixel cell (cell c: pixels 4c to 4c + 3) the
        network's probability that an absorber's λ2796 lies there, sigmoid of its cell logit,
        before the decoding sums neighbours and calibrates (docs/absorbers.md). (N, cells)."""
        if not self.multi_absorber or self._backend is None or self.model is None:
            raise ValueError("cell_probabilities: needs a multi-absorber model (model='multi')")
        x = np.atleast_2d(np.asarray(flux, np.float32))
        iv = np.zeros_like(x) if ivar is None else np.atleast_2d(np.asarray(ivar, np.float32))
        pm = np.zeros(x.shape, np.uint8) if pixmask is None else np.atleast_2d(pixmask)
        iv_net = ew_mod.scatter_ivar(x, iv, pm) if self.model.reads_noise else None
        logits, _ = _split_maps(self._backend.infer_map(x, iv_net))
        return 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -60.0, 60.0)))

    def _detect_chunks(
        self, flux: Any, wave: Any, err: Any, **kw: Any
    ) -> Detections:  # fmt: skip
        """detect() on host arrays of more than chunk_size spectra, chunk_size at a time: every
        per-spectrum argument is sliced, the results joined. Each spectrum's result does not
        depend on the others', so this equals one call, with the working memory of one chunk
        (preprocessed spectra, weights, network outputs) rather than of all."""
        flux = np.asarray(flux)
        n = len(flux)

        def per_spectrum(a: Any, ndim: int) -> bool:  # an argument with one entry per spectrum
            return a is not None and np.ndim(a) == ndim and len(a) == n

        sliced = {"err": 2, "ivar": 2, "mask": 2, "wave": 2, "resolution": 1, "z_em": 1}
        args = {"wave": wave, "err": err, **kw}
        parts = []
        for start in range(0, n, self.chunk_size):
            stop = min(start + self.chunk_size, n)
            chunk = {
                k: (np.asarray(v)[start:stop] if per_spectrum(v, sliced.get(k, -1)) else v)
                for k, v in args.items()
            }
            parts.append(self.detect(flux[start:stop], **chunk))
        return Detections.concat(parts)

    def _host_outputs(self, x: np.ndarray, ivar: np.ndarray, ivar_net: np.ndarray) -> tuple:
        """The method on preprocessed host spectra: ("score", score, λ2796) from the matched
        filter, ("pairs", probability, λ2796), or ("maps", maps, summary or None). ivar_net:
        what a network that reads the noise gets (ivar, with the scatter's estimate for spectra
        without errors)."""
        if self.method == "matched-filter":
            from .matched_filter import match

            r = match(x, ivar if np.any(ivar) else None, threshold=self.threshold,
                      threads=self.threads)  # fmt: skip
            return "score", np.asarray(r.significance, np.float32), r.lambda2796
        assert self._backend is not None and self.model is not None
        iv = ivar_net if self.model.reads_noise else None
        if not self._backend.map_output:
            return ("pairs", *self._backend.infer(x, iv))
        if self._backend.has_summary:  # mgfast_dual: the summary head's too (lift_by_summary)
            prob, lam32, maps = self._backend.infer_dual(x, iv)
            return "maps", maps, np.stack([prob, lam32], axis=1)
        return "maps", self._backend.infer_map(x, iv), None

    def _device_stages(
        self, flux: Any, wave: Any, err: Any, ivar: Any, mask: Any, resolution: Any,
        normalised: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:  # fmt: skip
        """detect() on spectra in GPU memory: flags, n_masked, snr, pixmask and the outputs, all
        made on the device."""
        if self._backend is None or not hasattr(self._backend, "detect_device"):
            raise ValueError(
                "flux: a GPU array needs a GPU backend (Detector(backend='cuda')) and the "
                "network method; pass a host (NumPy) array otherwise"
            )
        if wave is not None or resolution is not None:
            raise ValueError(
                "flux: GPU arrays must already be on mgfast.grid (no wave, no resolution); "
                "spectra on other grids go through the host path (pass NumPy arrays)"
            )
        for name, a in (("err", err), ("ivar", ivar), ("mask", mask)):
            if a is not None and not _on_gpu(a):
                raise ValueError(f"{name}: must be a GPU array like flux (or None)")
        if np.ndim(flux) == 1:  # one spectrum
            flux, err, ivar, mask = (None if a is None else a.reshape(1, -1)
                                     for a in (flux, err, ivar, mask))  # fmt: skip
        r = self._backend.detect_device(flux, err, ivar, mask, normalised=normalised)
        out = r["out"]
        kind = ("maps", out, r.get("summary")) if self._backend.map_output else (
            "pairs", out[:, 0].copy(), out[:, 1].copy())  # fmt: skip
        return r["flags"], r["n_masked"], r["snr"], r["pixmask"], kind

    def _decode(
        self, out: tuple, n: int
    ) -> tuple[np.ndarray, np.ndarray, str | None, Absorbers | None, np.ndarray | None]:
        """Per-spectrum score and λ2796 (float64), the model's hash, and for a map model the
        absorbers and their count per spectrum."""
        kind = out[0]
        if kind == "score":
            return out[1], np.asarray(out[2], np.float64), None, None, None
        assert self.model is not None
        if kind == "pairs":
            return out[1], out[2].astype(np.float64), self.model.sha256, None, None
        absorbers = decode_absorbers(
            *_split_maps(out[1]),
            calibration=self.model.calibration,
            sigma_scale=self.model.sigma_scale,
        )
        if out[2] is not None:  # mgfast_dual: the summary's probability lifts its absorber's
            absorbers = lift_by_summary(absorbers, out[2][:, 0], out[2][:, 1])
        # One story per spectrum: the row is its most probable absorber (probability, λ2796),
        # so that it is detected exactly when one absorber reaches the absorber threshold.
        assert self.absorber_threshold is not None
        n_abs, best = absorbers.per_spectrum(n, self.absorber_threshold)
        found = best >= 0
        score = np.zeros(n, np.float32)
        score[found] = absorbers.probability[best[found]]
        lam = np.full(n, np.nan)
        lam[found] = absorbers.lambda2796[best[found]]
        return score, lam, self.model.sha256, absorbers, n_abs

    def detect_stream(
        self,
        batches: Iterable[Any],
        *,
        prefetch: int = 2,
    ) -> Iterator[StreamResult]:
        """Detect MgII in a stream of batches, for pipelines: one StreamResult per input batch,
        in order, holding the input IDs and their Detections (or the error of a batch that
        failed, with its IDs: the stream goes on).

        Each batch is a flux array ((N, n) or one spectrum) on mgfast.grid and normalised, or a
        mapping with ``flux`` and optionally ``ids``, ``wave``, ``err``, ``ivar``, ``mask``,
        ``resolution``, ``normalised`` (the arguments of ``detect``), or an object with
        ``flux`` and ``err`` attributes (a mgfast.Simulation). IDs default to running indices
        over the whole stream. A background thread reads up to ``prefetch`` batches ahead
        (reading files, simulating) while this one detects: memory stays bounded by the batch
        size × (prefetch + 2), however long the stream.
        """
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch: expected a positive integer, got {prefetch!r}")
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop = threading.Event()
        done = object()

        def read() -> None:
            try:
                for item in batches:
                    while not stop.is_set():
                        try:
                            q.put((item, None), timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if stop.is_set():
                        return
            except BaseException as e:  # the iterable itself failed: the stream ends there
                q.put((None, e))
            q.put((done, None))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        start = 0
        try:
            while True:
                item, failure = q.get()
                if item is done:
                    return
                if failure is not None:
                    raise failure
                ids = np.empty(0, np.int64)
                try:
                    kwargs, ids = _stream_item(item, start)
                    start += len(ids)
                    res = self.detect(**kwargs)
                    if np.ndim(res.probability) == 0:  # one spectrum: keep the batch shape
                        res = Detections(**{
                            k: (np.atleast_1d(v) if isinstance(v, np.ndarray | np.generic)
                                else v)
                            for k, v in res.__dict__.items()
                        })  # fmt: skip
                    yield StreamResult(ids, res, None)
                except (ValueError, RuntimeError) as e:
                    yield StreamResult(ids, None, f"{type(e).__name__}: {e}")
        finally:
            stop.set()
            reader.join()

    def detect_files(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        format: str | None = None,
        allow_low_resolution: bool = False,
        journal: str | Path | None = None,
        resume: bool = False,
        dask: str | None = None,
        files_per_chunk: int = 64,
        merge_arms: bool = True,
        progress: Callable[[int, int, int], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        z_em: Mapping[str, float] | None = None,
    ) -> Catalog:
        """Detect MgII in spectrum files: one catalogue row per spectrum, one error per file that
        could not be read or searched (never an exception for a bad file). With a multi-absorber
        model (``multi_absorber``) the rows carry ``n_absorbers`` and ``Catalog.absorbers`` holds
        one row per absorber candidate with its spectrum's source columns (docs/io.md).

        Parameters
        ----------
        paths : files, directories (every file in them, sorted) and glob patterns
        format : one of mgfast.io.FORMATS; default: detected per file
        allow_low_resolution : search SDSS/DESI-like spectra (R < 10000) with a warning; without
            it such a file is an error row (its reason says how to search it) and the run goes on
        journal : directory where results are written as they come, file chunk by file chunk
            (atomically), so that a killed run loses nothing written; with ``resume`` the files
            already there are skipped (docs/io.md)
        dask : a dask.distributed scheduler address, or "local:N" for a local cluster of N
            worker processes; files are partitioned across workers, one Detector per worker
        files_per_chunk : files per journal chunk (and per dask task)
        merge_arms : combine the per-arm 4MOST files of one object (same OBJ_UID, else OBJ_NAME,
            else OBJECT) into one spectrum and one row, whose ``file`` lists them joined by ';';
            False: each per-arm file is a row of its own (docs/io.md)
        progress : called as progress(files_done, files_total, spectra_done)
        on_error : called as on_error(file, reason) for each file that fails in this call
        z_em : quasar redshifts by spectrum id or by file name (with or without extensions), over
            those the files carry (SDSS spec files' pipeline Z); each spectrum found gets
            detect's z_em treatment (DetectionFlag IN_FOREST, ASSOCIATED; nothing searched
            beyond z_em) and the catalogue its z_em column
        """
        from .detect_files import detect_files

        return detect_files(
            self, paths, format=format, allow_low_resolution=allow_low_resolution,
            journal=journal, resume=resume, dask=dask, files_per_chunk=files_per_chunk,
            merge_arms=merge_arms, progress=progress, on_error=on_error, z_em=z_em,
        )  # fmt: skip


def _summary_ews(
    flux: np.ndarray, ivar: np.ndarray, lam: np.ndarray, detected: np.ndarray, threads: int
) -> dict[str, np.ndarray]:
    """The per-spectrum EW columns: the doublet measured at λ2796 in detected spectra (without a
    network's EW to size the windows: mgfast.ew.measure's two passes)."""
    n = len(lam)
    cols = {k: np.full(n, np.nan, np.float32) for k in _EW_COLUMNS}
    rows = np.flatnonzero(detected & np.isfinite(lam))
    if rows.size == 0:
        return cols
    z = lam[rows] / MGII_2796.wavelength - 1.0
    ew, sig = ew_mod.measure(flux, ivar, rows, z, np.full(rows.size, np.nan), threads=threads)
    for j, line in enumerate(("ew2796", "ew2803")):
        cols[line][rows] = ew[:, j]
        cols[line + "_err"][rows] = sig[:, j]
    return cols


def _best_absorber_ews(absorbers: Absorbers, detected: np.ndarray) -> dict[str, np.ndarray]:
    """The per-spectrum EW columns of a multi-absorber model: its most probable absorber's, in
    detected spectra (NaN elsewhere)."""
    n = len(detected)
    _, best = absorbers.per_spectrum(n, 1.0)
    rows = np.flatnonzero(detected & (best >= 0))
    cols = {k: np.full(n, np.nan, np.float32) for k in _EW_COLUMNS}
    for k in _EW_COLUMNS:
        cols[k][rows] = getattr(absorbers, k)[best[rows]]
    return cols


def _check_normalised(flux: np.ndarray, pixmask: np.ndarray) -> np.ndarray:
    """DetectionFlag.NOT_NORMALISED where spectra given as normalised do not look it: more than
    half of every 7th usable pixel below or above NORMALISED_MEDIAN_RANGE (their median outside
    it), with one warning for them all. Counts, not a median: cheap on every call."""
    lo, hi = NORMALISED_MEDIAN_RANGE
    f = flux[:, ::7]
    usable = pixmask[:, ::7] == 0
    half = usable.sum(axis=1) / 2.0
    bad = (np.sum(usable & (f < lo), axis=1) > half) | (np.sum(usable & (f > hi), axis=1) > half)
    if bad.any():
        example = float(np.median(f[bad][0][usable[bad][0]]))
        warnings.warn(
            f"{int(bad.sum())} of {len(bad)} spectra given as continuum-normalised do not look it "
            f"(median flux of their usable pixels outside [{lo:g}, {hi:g}], e.g. {example:.3g}); "
            "they were searched as given and are flagged NOT_NORMALISED: pass normalised=False "
            "to fit their continuum",
            NormalisationWarning,
            stacklevel=3,
        )
    return np.where(bad, np.uint32(DetectionFlag.NOT_NORMALISED), np.uint32(0))


def _on_gpu(a: Any) -> bool:
    """Whether ``a`` lives in GPU memory (CuPy, PyTorch CUDA tensors, pycuda, Numba, ...)."""
    return hasattr(a, "__cuda_array_interface__")


def _median_snr(ivar: np.ndarray, threads: int = 0) -> np.ndarray:
    """Median sqrt(ivar) over the pixels with ivar > 0 per row, NaN where there are none: numpy's
    nanmedian of the same, in the core (a selection per row, not a sort; the GPU engine computes
    it on the device, cuda::enqueue_median_snr)."""
    return _core.median_snr(np.ascontiguousarray(ivar, np.float32), int(threads))


def _check_z_em(z_em: Any, n: int) -> np.ndarray | None:
    """z_em as (n,) float64 (NaN: unknown), or None; ValueError for a bad value or shape."""
    if z_em is None:
        return None
    try:
        z = np.asarray(z_em, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"z_em: expected a number or an array of numbers, got {z_em!r}") from None
    if z.ndim == 0:
        z = np.full(n, float(z))
    if z.shape != (n,):
        raise ValueError(f"z_em: {z.shape[0] if z.ndim == 1 else z.shape} values for {n} spectra")
    bad = np.isinf(z) | (z < 0)
    if bad.any():
        raise ValueError(f"z_em: must be >= 0 or NaN (unknown), got {z[bad][0]!r}")
    return z


def _doppler(kms: float) -> float:
    return float(np.sqrt((1 + kms / C_KMS) / (1 - kms / C_KMS)))


def _mask_beyond_z_em(
    z_em: np.ndarray, flux: np.ndarray, ivar: np.ndarray, pixmask: np.ndarray
) -> np.ndarray:
    """Mask, in place, the pixels redward of λ2803 at ASSOCIATED_KMS above z_em; returns the
    masked pixels per spectrum and arm."""
    cut = MGII_2803.wavelength * (1 + z_em) * _doppler(ASSOCIATED_KMS)  # NaN: nothing cut
    beyond = grid.wavelength()[None, :] > cut[:, None]
    flux[beyond] = 1.0
    ivar[beyond] = 0.0
    pixmask[beyond] |= np.uint8(PixelFlag.BEYOND_ZEM)
    masked = pixmask != 0
    return np.stack([masked[:, a.start : a.stop].sum(axis=1) for a in grid.ARMS], axis=1)


def _z_em_flags(lam: np.ndarray, z_em: np.ndarray) -> np.ndarray:
    """DetectionFlag IN_FOREST and ASSOCIATED of λ2796 values given z_em (0 where either is
    NaN)."""
    z_abs = lam / MGII_2796.wavelength - 1.0
    with np.errstate(invalid="ignore"):
        forest = lam < LYA_REST * (1 + z_em)
        assoc = np.abs(np.log((1 + z_abs) / (1 + z_em))) <= np.log(_doppler(ASSOCIATED_KMS))
    return (np.where(forest, int(DetectionFlag.IN_FOREST), 0)
            | np.where(assoc, int(DetectionFlag.ASSOCIATED), 0)).astype(np.uint32)  # fmt: skip


def _quality(snr: np.ndarray, pixmask: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The DetectionFlag bits of spectra (2D pixmask) given their SNR and λ2796."""
    flags = np.where(snr < LOW_SNR_LIMIT, int(DetectionFlag.LOW_SNR), 0).astype(np.uint32)
    rows = np.flatnonzero(np.isfinite(lam))
    if rows.size:
        ratio = MGII_2803.wavelength / MGII_2796.wavelength
        offsets = np.arange(-EDGE_PIXELS, EDGE_PIXELS + 1)
        near_edge = np.zeros(rows.size, bool)
        near_mask = np.zeros(rows.size, bool)
        for line in (lam[rows], lam[rows] * ratio):
            p = grid.pixel_of(line)
            ok = np.isfinite(p)
            pix = np.clip(np.rint(np.where(ok, p, 0)).astype(np.int64), 0, grid.N_PIX - 1)
            near_edge |= ~ok | (grid.edge_distance()[pix] < EDGE_PIXELS)
            window = np.clip(pix[:, None] + offsets, 0, grid.N_PIX - 1)
            near_mask |= ok & (pixmask[rows[:, None], window] != 0).any(axis=1)
        flags[rows] |= np.where(near_edge, int(DetectionFlag.NEAR_EDGE), 0).astype(np.uint32)
        flags[rows] |= np.where(near_mask, int(DetectionFlag.NEAR_MASKED), 0).astype(np.uint32)
    return flags


__all__ = ["Detections", "Detector", "default_model_path", "resolve_model", "shipped_models"]
