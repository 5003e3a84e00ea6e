"""masklab.viz."""
