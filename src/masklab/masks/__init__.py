"""masklab.masks."""
