"""Interoperability with other libraries' checkpoints: exact, or refused with the offending field named."""
