"""detect_files across the workers of a dask cluster: one Detector per worker process, chunks of
files as tasks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .file_read import ZemTable
from .journal import Outcome

if TYPE_CHECKING:
    from .detector import Detector


_WORKER_DETECTORS: dict[str, Detector] = {}


def _worker_chunk(
    config: dict[str, Any], units: list[tuple[str, ...]], format: str | None, allow_low: bool,
    z_em: ZemTable = None,
) -> list[Outcome]:  # fmt: skip
    """A dask task: one Detector per worker process, built once from ``config``."""
    from .detect_files import process_units
    from .detector import Detector

    key = json.dumps(config, sort_keys=True)
    if key not in _WORKER_DETECTORS:
        _WORKER_DETECTORS[key] = Detector(**config)
    det = _WORKER_DETECTORS[key]
    return process_units(det, units, format, allow_low, z_em)


def dask_client(spec: str) -> tuple[Any, Any]:
    """A dask.distributed Client for a scheduler address, or for a new LocalCluster ("local:N");
    returns (client, cluster or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError(
            f"--dask {spec}: dask.distributed is not installed; pip install 'dask[distributed]', "
            "or run without --dask"
        ) from None
    if spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"--dask {spec}: expected local:N with N >= 1 worker processes")
        import logging

        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )  # fmt: skip
        return Client(cluster), cluster
    try:
        return Client(spec, timeout="20s"), None
    except OSError as e:
        raise RuntimeError(f"--dask {spec}: cannot reach the scheduler ({e})") from None


def _unit_chunks(units: list[tuple[str, ...]], files_per_chunk: int) -> list[list[tuple[str, ...]]]:
    """Consecutive units, about ``files_per_chunk`` files a chunk, a unit never split."""
    chunks: list[list[tuple[str, ...]]] = []
    n = files_per_chunk
    for u in units:
        if n >= files_per_chunk:
            chunks.append([])
            n = 0
        chunks[-1].append(u)
        n += len(u)
    return chunks


def chunks_dask(
    det: Detector, spec: str, units: list[tuple[str, ...]], format: str | None, allow_low: bool,
    files_per_chunk: int, z_em: ZemTable = None,
) -> Iterator[tuple[list[str], list[Outcome]]]:  # fmt: skip
    client, cluster = dask_client(spec)  # first: it says clearly when dask is missing
    from distributed import as_completed

    config = dict(det.config)
    config["threshold"] = det.threshold
    config["absorber_threshold"] = det.absorber_threshold
    if cluster is not None and not config["threads"]:
        config["threads"] = 1  # one thread per worker process: N workers use N cores
    try:
        futures = {
            client.submit(_worker_chunk, config, c, format, allow_low, z_em, pure=False): [
                f for unit in c for f in unit
            ]
            for c in _unit_chunks(units, files_per_chunk)
        }
        for fut, outcomes in as_completed(futures, with_results=True):
            yield futures[fut], outcomes
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
