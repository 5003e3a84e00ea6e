"""``KEY=VALUE`` settings of the benchmark scripts (``--set``, ``--override``, ``--augment``), parsed one way:
the value as JSON (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``null``), else ``True``/``False`` in any case, else
the text itself (``preset=table-small``)."""

from __future__ import annotations

import json


def parse_setting(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` -> ``(key, value)``; a ``SystemExit`` naming the text when there is no ``=`` or no key."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"error: setting {text!r} is not KEY=VALUE")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), {"true": True, "false": False}.get(raw.strip().lower(), raw)


def parse_settings(items: list[str]) -> dict[str, object]:
    """Several ``KEY=VALUE`` texts -> a dict (a later key replaces an earlier one)."""
    return dict(parse_setting(item) for item in items)
