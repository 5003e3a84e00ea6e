"""masklab.eval."""
