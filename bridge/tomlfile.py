"""Reading the project's TOML files with errors that name the file (and the line, where known).

Every loader reads its file through ``read_toml`` and names other files through ``file_path``; a
file that is missing, unreadable, not UTF-8 or not TOML, and a path that cannot name a file, are
the loader's own error (a ValueError subclass) with a one-line message, never another exception.
``Table`` reads the parsed tables key by key with the type each key must have.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_toml(path: Path, error: type[Exception], what: str = "file") -> dict:
    """The parsed contents of ``path``; ``error`` (with the path in its message) if it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except ValueError:  # a NUL in the path
        raise error(f"{path!r}: not a file name (it holds a NUL character)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    "TOML files must be saved as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def file_path(value: object, base: Path, error: type[Exception], where: str) -> Path:
    """The absolute path of a file a configuration names by ``value`` (relative to ``base``); ``error``
    naming ``where`` if ``value`` is not text that can name a file (an empty text, a NUL character)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise error(f"{where}: expected a file name, got {value!r}")
    return (base / value).resolve()


class Table:
    """One table of a configuration file, read key by key with the type each must have; a value of
    another type, a missing required key or an unknown key is ``error`` naming file and key. A key
    read without a default (``None``) is required."""

    def __init__(self, values: object, where: str, error: type[Exception]):
        if not isinstance(values, dict):
            raise error(f"{where}: must be a table, got {values!r}")
        self.values, self.where, self.error = values, where, error

    def check_keys(self, allowed: Iterable[str]) -> None:
        unknown = set(self.values) - set(allowed)
        if unknown:
            raise self.error(f"{self.where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")

    def table(self, key: str) -> Table:
        return Table(self.values.get(key, {}), f"{self.where}: [{key}]", self.error)

    def tables(self, key: str) -> list[Table]:
        entries = self.values.get(key, [])
        if not isinstance(entries, list):
            raise self.error(f"{self.where}: {key!r} must be a list of tables ([[{key}]]), got {entries!r}")
        return [Table(entry, f"{self.where}: {key}[{i}]", self.error) for i, entry in enumerate(entries)]

    def text(self, key: str, default: str | None = None) -> str:
        return self._get(key, default, str, "text")

    def integer(self, key: str, default: int | None = None) -> int:
        return self._get(key, default, int, "an integer")

    def number(self, key: str, default: float | None = None) -> float:
        return float(self._get(key, default, (int, float), "a number"))

    def flag(self, key: str, default: bool | None = None) -> bool:
        return self._get(key, default, bool, "true or false")

    def array(self, key: str, default: list | None = None) -> list:
        """A TOML array (its items are the caller's to check)."""
        return self._get(key, default, list, "a list")

    def _get(self, key: str, default: object, types: type | tuple[type, ...], what: str) -> Any:
        if key not in self.values and default is None:
            raise self.error(f"{self.where}: missing {key!r}")
        value = self.values.get(key, default)
        if isinstance(value, bool) != (types is bool) or not isinstance(value, types):
            raise self.error(f"{self.where}: {key!r} must be {what}, got {value!r}")
        return value
