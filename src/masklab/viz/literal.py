"""User text in pictures: file, run, series, column, class and token names, and cell values, drawn as written.

matplotlib reads a text with two ``$`` as mathtext (``q$1$.png`` is drawn ``q1.png``; ``fx_$USD_$EUR.csv``
cannot be parsed, and the figure fails to save) and, with ``rcParams["text.usetex"]``, as TeX. Every text of
masklab's pictures that carries such a string is drawn with ``**LITERAL`` (``ax.set_title(name, **LITERAL)``,
``ax.set_xticks(ticks, names, **LITERAL)``, ``fig.suptitle(..., **LITERAL)``, ``ax.text(..., **LITERAL)``),
so a ``$`` is a dollar sign. The pictures drawn with Pillow (:mod:`masklab.viz.grids`) have no mathtext.
"""

from __future__ import annotations

from typing import Any

LITERAL: dict[str, Any] = {"parse_math": False, "usetex": False}
