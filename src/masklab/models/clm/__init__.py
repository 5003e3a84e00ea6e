"""GPT-style causal language modelling and generation with a KV cache."""

from masklab.models.clm.model import GPT, GPTConfig, evaluate_nll, positions_from_padding

__all__ = ["GPT", "GPTConfig", "evaluate_nll", "positions_from_padding"]
