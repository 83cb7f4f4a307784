"""The only package that imports Keras/TensorFlow: loading, tracing, evaluation, surgery."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
