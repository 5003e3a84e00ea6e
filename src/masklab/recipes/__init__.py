"""Typed task functions (callable from a notebook; the CLI only parses arguments and calls these)."""
