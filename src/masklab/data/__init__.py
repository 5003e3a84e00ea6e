"""masklab.data."""
