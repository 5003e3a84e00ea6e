"""masklab: masked modeling for images, text and tables.

One convention everywhere: a boolean mask is True where something is hidden (``masked``), padded
(``padding``) or not allowed to attend (``blocked``). Conversions to other libraries' polarities live in
:mod:`masklab.masks.convert` and nowhere else.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
