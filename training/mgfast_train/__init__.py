"""mgfast's training library (installed with mgfast; Keras and JAX come with the ``train`` extra,
``pip install -e ".[train]"``): the training data (``data``), the Keras models (``models``),
their losses and training graph (``objectives``), metrics and thresholds (``metrics``), decoding
(``decode``, the package's one heatmap decoder), the detectors the evaluations compare
(``detectors``), the held-out mock family (``heldout_mock``, which shares no code with the
simulator) and run provenance (``provenance``). The scripts in training/ use it
(docs/TRAINING.md)."""
