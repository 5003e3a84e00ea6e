"""masklab.models."""
