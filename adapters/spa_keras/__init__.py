"""SPA's TensorFlow/Keras adapter.

* export (:mod:`spa_keras.export`): tf2onnx with probe weights, every ONNX initializer
  mapped by value to the Keras weights it came from (:mod:`spa_keras.mapping`), folded
  BatchNormalization included;
* apply a plan (:mod:`spa_keras.apply`): kept indices carried back to weights, layer rules
  (:mod:`spa_keras.layers`) turn them into new widths, the Functional or Sequential model
  is rebuilt (:mod:`spa_keras.rebuild`);
* ``.keras`` files (:mod:`spa_keras.saving`); the hooks are in :mod:`spa_keras.plugin`;
* :func:`to_torch`: the pruned ONNX model as a PyTorch module (onnx2torch); it backs
  ``spa_core.prune(model, x, target="torch")`` for every source framework.

Keras and TensorFlow are imported only when needed.
"""

from .cross import to_torch

__all__ = ["to_torch"]
