"""Inference handlers for the models Sabio's built-in algorithms train.

Training copies this package into the model's ``code/`` directory (as
``sabio_algorithm_serving``) next to a ``code/inference.py`` that re-exports one algorithm's
``model_fn``/``input_fn``/``predict_fn``/``output_fn``. So it imports only the standard library,
NumPy and the algorithm's framework, and refers to itself with relative imports.
"""
