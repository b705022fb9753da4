"""The losses of each architecture and the graph that is trained (``training_model``)."""

from __future__ import annotations

import keras
from keras import ops

from .models import ARCHITECTURES, trunk_convs


def offset_l1(y_true, y_pred):  # type: ignore[no-untyped-def]
    """|offset − truth| at the true cell, in pixels; spectra without an absorber add nothing."""
    cell = ops.cast(y_true[:, 0], "int32")
    has = ops.cast(cell >= 0, "float32")
    idx = ops.expand_dims(ops.maximum(cell, 0), 1)
    pred = ops.take_along_axis(y_pred, idx, axis=1)[:, 0]
    return ops.sum(has * ops.abs(pred - y_true[:, 1])) / ops.maximum(ops.sum(has), 1.0)


def summary_class_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    """mgfast_fcn's softmax cross-entropy over cells + "none", mean over the spectra whose class
    is not -1 (mgfast_joint's multi-absorber spectra carry -1: no one-absorber target)."""
    cls = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    has = ops.cast(cls >= 0, "float32")
    ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(cls, 0), y_pred, from_logits=True)
    return ops.sum(has * ce) / ops.maximum(ops.sum(has), 1.0)


def multi_cell_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    """Binary cross-entropy summed over the cells of a spectrum (absorbers are rare cells)."""
    bce = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
    return ops.sum(bce, axis=-1)


def multi_regression_loss(y_true, y_pred):  # type: ignore[no-untyped-def]
    """At the cells that hold an absorber: the Laplace negative log-likelihood of the offset
    (pixels) and the Gaussian ones of ln EW2796 and ln EW2803; mean over those cells."""
    has = y_true[..., 0]
    lb = ops.clip(y_pred[..., 1], -6.0, 4.0)
    nll = ops.abs(y_true[..., 1] - y_pred[..., 0]) * ops.exp(-lb) + lb
    for t, k in ((2, 2), (3, 4)):  # (truth column, predicted column) of ln EW2796, ln EW2803
        ls = ops.clip(y_pred[..., k + 1], -6.0, 2.0)
        z = (y_true[..., t] - y_pred[..., k]) * ops.exp(-ls)
        nll = nll + 0.5 * z * z + ls
    return ops.sum(has * nll) / ops.maximum(ops.sum(has), 1.0)


def training_model(  # type: ignore[no-untyped-def]
    arch: str,
    lr_schedule,
    freeze_trunk: bool = False,
    summary_weight: float = 1.0,
    channels: tuple[str, ...] | None = None,
) -> tuple[keras.Model, keras.Model]:
    """The inference model and the model that is trained (same weights, losses attached).
    freeze_trunk: the trunk's convolutions are not trained (a head on a given trunk).
    summary_weight: mgfast_joint, the weight of the summary's two losses (the maps' are 1).
    channels: the input channels (mgfast.model.INPUT_CHANNELS; None: flux only)."""
    net = ARCHITECTURES[arch](channels=channels)
    if freeze_trunk:
        for layer in trunk_convs(net):
            layer.trainable = False
    opt = keras.optimizers.Adam(learning_rate=lr_schedule, epsilon=1e-7)
    if arch == "mgfast_joint":
        cells, offsets, none, logits, maps = net.outputs
        summary = keras.layers.Concatenate(name="summary_logits")([cells, none])
        train = keras.Model(net.input, [summary, offsets, logits, maps])
        train.compile(
            optimizer=opt,
            loss=[summary_class_loss, offset_l1, multi_cell_loss, multi_regression_loss],
            loss_weights=[summary_weight, summary_weight, 1.0, 1.0],
        )
    elif arch == "mgfast_fcn":
        cells, offsets, none = net.outputs
        logits = keras.layers.Concatenate(name="logits")([cells, none])
        train = keras.Model(net.input, [logits, offsets])
        train.compile(
            optimizer=opt,
            loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True), offset_l1],
        )
    elif arch == "mgfast_multi":
        train = keras.Model(net.input, net.outputs)
        train.compile(optimizer=opt, loss=[multi_cell_loss, multi_regression_loss])
    else:  # the paper: 300 × BCE + MAE (Å)
        # a wrapper sharing the layers, so that the saved inference model carries no optimizer
        train = keras.Model(net.input, net.outputs)
        train.compile(
            optimizer=opt,
            loss=[keras.losses.BinaryCrossentropy(), keras.losses.MeanAbsoluteError()],
            loss_weights=[300.0, 1.0],
        )
    return net, train
