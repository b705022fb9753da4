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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import ew as ew_mod
from . import stages
from .results import Catalog, Detections

if TYPE_CHECKING:
    from .engine import CpuBackend, GpuBackend
    from .model import Model

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
        from .options import parse_device, parse_precision

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
        # "auto" is the CPU engine until the GPU engine has been verified on a GPU
        try:
            device = parse_device("cpu" if backend == "auto" else backend, "backend")
        except ValueError:  # the parser's message, with the one spelling only the Detector takes
            raise ValueError(
                f"backend: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {backend!r}"
            ) from None
        on_gpu = device.is_cuda
        parse_precision(precision, device)
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
        self._backend: CpuBackend | GpuBackend | None = None
        self.model: Model | None = None
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
        gpu = stages.on_gpu(flux)
        if not single and not gpu and len(flux) > self.chunk_size:  # type: ignore[arg-type]
            return self._detect_chunks(
                flux, wave, err, ivar=ivar, mask=mask, resolution=resolution,
                normalised=normalised, z_em=z_em,
            )  # fmt: skip
        if gpu:
            if z_em is not None:
                raise ValueError("z_em: not supported for spectra given as GPU arrays (pass NumPy)")
            prep, out = stages.prepare_device(
                self, flux, wave, err, ivar, mask, resolution, normalised
            )
        else:
            prep = stages.prepare(
                flux, wave, err, ivar=ivar, mask=mask, resolution=resolution,
                normalised=normalised, z_em=z_em, threads=self.threads,
            )  # fmt: skip
            out = stages.infer(self, prep)
        dec = stages.measure(self, prep, stages.decode(self, out, len(prep)))
        res = stages.assemble(self, prep, dec, normalised)
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
        logits, _ = stages.split_maps(self._backend.infer_map(x, iv_net))
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
            chunk: dict[str, Any] = {
                k: (np.asarray(v)[start:stop] if per_spectrum(v, sliced.get(k, -1)) else v)
                for k, v in args.items()
            }
            parts.append(self.detect(flux[start:stop], **chunk))
        return Detections.concat(parts)

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
        q: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=prefetch)
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
                        one: dict[str, Any] = {  # (a per-spectrum row of values stays one)
                            k: (np.asarray(v)[np.newaxis] if isinstance(v, np.ndarray | np.generic)
                                else v)
                            for k, v in res.__dict__.items()
                        }  # fmt: skip
                        res = Detections(**one)
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


__all__ = ["Detections", "Detector", "default_model_path", "resolve_model", "shipped_models"]
