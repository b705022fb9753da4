# Type stub of mgfast._gpu, the GPU inference engine (src/python/gpu/bind_gpu.cpp), checked by hand:
# the module builds only with the CUDA toolkit and cuDNN. Where it imports, scripts/gen_stubs.sh
# regenerates this file from the built module instead. Keep it matching bind_gpu.cpp and the
# engine calls it shares with CpuNetwork (def_engine_calls in src/python/bind_network.hpp).
"""
mgfast's GPU inference backend (cuDNN + cuBLAS)
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

import mgfast._core

class GpuStageTimes:
    """Milliseconds per stage, summed over the batches of one GpuNetwork.profile call."""
    @property
    def h2d_ms(self) -> float: ...
    @property
    def compute_ms(self) -> float: ...
    @property
    def d2h_ms(self) -> float: ...
    @property
    def batches(self) -> int: ...

class GpuNetwork:
    def __init__(
        self,
        n_in: typing.SupportsInt | typing.SupportsIndex,
        layers: collections.abc.Sequence[mgfast._core.Layer],
        options: mgfast._core.EngineOptions,
    ) -> None: ...
    def infer(
        self,
        flux: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        ivar: numpy.typing.ArrayLike | None = None,
    ) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]: ...
    def infer_dual(
        self,
        flux: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        ivar: numpy.typing.ArrayLike | None = None,
    ) -> tuple[numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]: ...
    def infer_map(
        self,
        flux: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        ivar: numpy.typing.ArrayLike | None = None,
    ) -> numpy.typing.NDArray[numpy.float32]: ...
    # flux, out, err, mask: device arrays exposing __cuda_array_interface__ (CuPy, PyTorch, ...)
    def infer_device(self, flux: typing.Any, out: typing.Any) -> None: ...
    def detect_device(
        self,
        flux: typing.Any,
        err: typing.Any,
        mask: typing.Any,
        err_is_ivar: bool,
        bad_bits: typing.SupportsInt | typing.SupportsIndex,
        normalise: bool,
        min_pixel_good: typing.SupportsFloat | typing.SupportsIndex,
        min_arm_good: typing.SupportsFloat | typing.SupportsIndex,
        knot_spacing: typing.SupportsFloat | typing.SupportsIndex,
        penalty: typing.SupportsFloat | typing.SupportsIndex,
        clip_low: typing.SupportsFloat | typing.SupportsIndex,
        clip_high: typing.SupportsFloat | typing.SupportsIndex,
        grow: typing.SupportsInt | typing.SupportsIndex,
        max_iter: typing.SupportsInt | typing.SupportsIndex,
        sigma_floor: typing.SupportsFloat | typing.SupportsIndex,
        spike_sigma: typing.SupportsFloat | typing.SupportsIndex,
    ) -> dict[str, numpy.typing.NDArray[typing.Any]]: ...
    def profile(
        self, flux: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]
    ) -> GpuStageTimes: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def device(self) -> int: ...
    @property
    def device_name(self) -> str: ...
    @property
    def device_string(self) -> str: ...
    @property
    def flops_per_spectrum(self) -> float: ...
    @property
    def fp16(self) -> bool: ...
    @property
    def graph_status(self) -> str: ...
    @property
    def has_summary(self) -> bool: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def input_features(self) -> list[str]: ...
    @property
    def map_output(self) -> bool: ...
    @property
    def n_in(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @property
    def slots(self) -> int: ...

def library_versions() -> str: ...
