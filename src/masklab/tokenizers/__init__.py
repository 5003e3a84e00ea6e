"""masklab.tokenizers."""
