"""masklab.nn."""
