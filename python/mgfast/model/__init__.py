"""The model package: the format (a directory with model.onnx and model.json), its writer and
its loader, the layer list the engines take, and the one heatmap decoder (training uses it too).

The loader checks a model against mgfast (SHA-256, grid, architecture) and hands the backends a
plain layer list whose weights are contiguous float32 arrays in the layouts they expect
(src/core/net/network.hpp): convolution weights (c_out, c_in, kernel) as in ONNX, dense weights
(n_out, n_in) with n_in in Keras' channels-last flatten order (position * channels + channel),
the two heads stacked as rows (probability, λ2796).

model.onnx: input "flux" (N, n_pix) float32 with a dynamic batch N; outputs "probability" and
"lambda2796" (Å), each (N, 1); opset 17; the graph build_onnx writes (what a Keras Conv1D model
exported with tf2onnx computes). A model that reads more than the flux (input_features: the
noise channels of issue 16) has input "features" (N, C, n_pix) instead. model.json: format and
format_version, architecture (a key of ARCHITECTURES), grid (n_pix, dlnlambda, arms), input
(name, channels when not the flux alone, normalisation), thresholds, trained, training (set,
seed), metrics, mgfast_version and onnx_sha256.

Modules: ``spec`` (input channels, architectures, the layer list, shapes and FLOPs),
``onnx_write`` (the canonical graph, random weights), ``onnx_read`` (the graph back to layers),
``package`` (model.json, ``save_model``, ``load_model``, ``Model``), ``decode`` (the heatmap).
"""

from __future__ import annotations

from .decode import decode_heatmap
from .onnx_read import read_fcn_onnx, read_onnx
from .onnx_write import build_onnx, random_weights
from .package import Model, file_sha256, grid_metadata, load_model, save_model, write_random_model
from .spec import (
    ARCHITECTURES,
    FCN_ARCHITECTURES,
    FCN_CELL,
    FCN_CONVS,
    FCN_OUTPUTS,
    FEATURES_NAME,
    FLUX_ONLY,
    FORMAT,
    FORMAT_VERSION,
    INPUT_CHANNELS,
    INPUT_NAME,
    LAMBDA_HEAD_GAIN,
    MAX_JSON_BYTES,
    MULTI_CONVS,
    MULTI_MAPS,
    MULTI_OUTPUT,
    ONNX_OPSET,
    OUTPUT_NAMES,
    Affine,
    AvgPool1d,
    Branch,
    Conv1d,
    ConvSpec,
    Dense,
    DenseSpec,
    Flatten,
    FlattenSpec,
    Heads,
    HeadsSpec,
    Heatmap,
    Layer,
    LayerSpec,
    PoolSpec,
    architecture_specs,
    check_channels,
    flops_per_spectrum,
    input_features,
    input_features_numpy,
    input_name,
    layer_shapes,
    same_padding,
    trunk_convs,
)

__all__ = [
    "ARCHITECTURES",
    "FCN_ARCHITECTURES",
    "FCN_CELL",
    "FCN_CONVS",
    "FCN_OUTPUTS",
    "FEATURES_NAME",
    "FLUX_ONLY",
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_CHANNELS",
    "INPUT_NAME",
    "LAMBDA_HEAD_GAIN",
    "MAX_JSON_BYTES",
    "MULTI_CONVS",
    "MULTI_MAPS",
    "MULTI_OUTPUT",
    "ONNX_OPSET",
    "OUTPUT_NAMES",
    "Affine",
    "AvgPool1d",
    "Branch",
    "Conv1d",
    "ConvSpec",
    "Dense",
    "DenseSpec",
    "Flatten",
    "FlattenSpec",
    "Heads",
    "HeadsSpec",
    "Heatmap",
    "Layer",
    "LayerSpec",
    "Model",
    "PoolSpec",
    "architecture_specs",
    "build_onnx",
    "check_channels",
    "decode_heatmap",
    "file_sha256",
    "flops_per_spectrum",
    "grid_metadata",
    "input_features",
    "input_features_numpy",
    "input_name",
    "layer_shapes",
    "load_model",
    "random_weights",
    "read_fcn_onnx",
    "read_onnx",
    "same_padding",
    "save_model",
    "trunk_convs",
    "write_random_model",
]
