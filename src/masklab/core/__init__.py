"""masklab.core: the contracts every layer above shares (loss, batch, model, config) and atomic file I/O.

The bottom layer: it imports nothing else from masklab.
"""
