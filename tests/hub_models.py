"""Tiny random keras-hub models for tests (no download, no preprocessor): vocabulary 50,
hidden 8, weights from engine_models.randomize. Callers skip without keras-hub."""

import pytest
from engine_models import randomize

VOCAB = 50


def _models():
    return pytest.importorskip("keras_hub").models


def _bert_like(cls, hidden, heads, layers, vocab, seed):
    model = getattr(_models(), cls)(
        vocabulary_size=vocab,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=16,
        max_sequence_length=16,
    )
    return model if seed is None else randomize(model, seed)


def bert(hidden=8, heads=2, layers=2, vocab=VOCAB, seed=None):
    return _bert_like("BertBackbone", hidden, heads, layers, vocab, seed)


def gpt2(hidden=8, heads=2, layers=2, vocab=VOCAB, seed=None):
    return _bert_like("GPT2Backbone", hidden, heads, layers, vocab, seed)


def llama(hidden=16, layers=2, intermediate=32, vocab=VOCAB, seed=None):
    model = _models().LlamaBackbone(
        vocabulary_size=vocab,
        num_layers=layers,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=hidden,
        intermediate_dim=intermediate,
    )
    return model if seed is None else randomize(model, seed)


def causal_lm(backbone):
    """The keras-hub causal LM over `backbone` (GPT2CausalLM or LlamaCausalLM)."""
    name = type(backbone).__name__.replace("Backbone", "CausalLM")
    return getattr(_models(), name)(backbone=backbone, preprocessor=None)
