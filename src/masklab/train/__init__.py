"""masklab.train."""
