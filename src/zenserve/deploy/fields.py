"""Reading one TOML table strictly: every key known, every value checked, one-line errors.

A release is edited by hand and applied by machines, so a typo must never be
silently ignored: an unknown key or a bad value is a ``ZenserveError`` naming
the file, the table and the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from zenserve.cost import parse_duration
from zenserve.errors import ZenserveError


class Fields:
    """The keys of one table, consumed one by one; ``finish()`` rejects the leftovers."""

    def __init__(self, data: object, origin: str, table: str = "") -> None:
        self.origin = origin
        self.table = table
        if not isinstance(data, dict):
            raise self.error(f"expected a table, got {_describe(data)}")
        self._data: dict[str, Any] = dict(data)

    def where(self, key: str) -> str:
        return f"[{self.table}] {key}" if self.table else key

    def error(self, message: str, key: str | None = None) -> ZenserveError:
        place = f"{self.origin}: {self.where(key)}" if key else (
            f"{self.origin}: [{self.table}]" if self.table else self.origin)
        return ZenserveError(f"{place}: {message}")

    def has(self, key: str) -> bool:
        return key in self._data

    def table_of(self, key: str) -> Fields:
        """A nested table (an empty one when absent)."""
        value = self._data.pop(key, {})
        if not isinstance(value, dict):
            raise self.error(f"expected a table, got {_describe(value)}", key)
        return Fields(value, self.origin, key if not self.table else f"{self.table}.{key}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self._take(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a non-empty string, got {_describe(value)}", key)
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self._data else None

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {_describe(value)}", key)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(f"must be {bound}, got {value}", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key, default)
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_describe(value)}", key)
        return value

    def ratio(self, key: str, default: float) -> float:
        value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(f"expected a number between 0 and 1, got {_describe(value)}", key)
        if not 0.0 <= value <= 1.0:
            raise self.error(f"must be between 0 and 1, got {value}", key)
        return float(value)

    def duration(self, key: str, default: float, positive: bool = False) -> float:
        """A duration as ``"10s"``/``"50ms"`` or a number of seconds."""
        value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(f"expected a duration like \"10s\", got {_describe(value)}", key)
        if isinstance(value, str):
            try:
                seconds = _parse_long_duration(value)
            except ZenserveError:
                raise self.error(f"bad duration {value!r}: use e.g. 50ms, 2s, 5m", key) from None
        else:
            seconds = float(value)
        if seconds < 0 or (positive and seconds == 0):
            raise self.error(f"must be {'more than' if positive else 'at least'} zero", key)
        return seconds

    def optional_duration(self, key: str) -> float | None:
        return self.duration(key, 0.0, positive=True) if key in self._data else None

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        options = list(choices)
        value = self._take(key, default)
        if value not in options:
            raise self.error(f"{value!r} is not one of: {', '.join(options)}", key)
        return str(value)

    def list_of_text(self, key: str) -> tuple[str, ...]:
        value = self._take(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item
                                                  for item in value):
            raise self.error(f"expected a list of names, got {_describe(value)}", key)
        return tuple(value)

    def list_of_integers(self, key: str, default: list[int]) -> tuple[int, ...]:
        value = self._take(key, default)
        if not isinstance(value, list) or not all(
                isinstance(item, int) and not isinstance(item, bool) for item in value):
            raise self.error(f"expected a list of whole numbers, got {_describe(value)}", key)
        return tuple(value)

    def finish(self) -> None:
        """Reject every key nobody asked for (a typo must not pass silently)."""
        if self._data:
            key = sorted(self._data)[0]
            raise self.error("unknown key", key)

    def _take(self, key: str, default: object) -> Any:
        if key in self._data:
            return self._data.pop(key)
        if default is None:
            raise self.error("missing (required)", key)
        return default


def _parse_long_duration(text: str) -> float:
    """``parse_duration`` plus minutes and hours, which rollouts are measured in."""
    stripped = text.strip()
    for unit, factor in (("h", 3600.0), ("m", 60.0)):
        if stripped.endswith(unit) and not stripped.endswith("ms"):
            return parse_duration(stripped[:-1]) * factor
    return parse_duration(stripped)


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    return repr(value)
