"""Read, check and patch EnergyPlus IDF text files.

Only what the bridge needs: objects as lists of fields, lookup by class and name, and writing
a patched copy. Comments are dropped from the copy; the user's own IDF is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class IdfObject:
    """One IDF object: its class (as written) and its fields (strings, comments removed)."""

    cls: str
    fields: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.fields[0] if self.fields else ""

    def to_text(self) -> str:
        if not self.fields:
            return f"{self.cls};\n"
        body = ",\n".join(f"    {value}" for value in self.fields)
        return f"{self.cls},\n{body};\n"


class Idf:
    """An IDF model held as an ordered list of objects."""

    def __init__(self, objects: list[IdfObject]):
        self.objects = objects

    @classmethod
    def parse(cls, text: str) -> "Idf":
        lines = [line.split("!", 1)[0] for line in text.splitlines()]
        cleaned = "\n".join(lines)
        objects = []
        for chunk in cleaned.split(";"):
            parts = [part.strip() for part in chunk.split(",")]
            if not parts or not parts[0]:
                continue
            objects.append(IdfObject(parts[0], parts[1:]))
        return cls(objects)

    @classmethod
    def read(cls, path: str | Path) -> "Idf":
        return cls.parse(Path(path).read_text(encoding="latin-1"))

    def write(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(obj.to_text() for obj in self.objects), encoding="latin-1")

    def of_class(self, cls: str) -> list[IdfObject]:
        wanted = cls.lower()
        return [obj for obj in self.objects if obj.cls.lower() == wanted]

    def remove_class(self, cls: str) -> None:
        wanted = cls.lower()
        self.objects = [obj for obj in self.objects if obj.cls.lower() != wanted]

    def add(self, cls: str, *fields: object) -> IdfObject:
        obj = IdfObject(cls, [str(value) for value in fields])
        self.objects.append(obj)
        return obj

    def find(self, cls: str, name: str) -> IdfObject | None:
        """The object of class ``cls`` named ``name`` (EnergyPlus compares names case-insensitively)."""
        wanted = name.lower()
        return next((obj for obj in self.of_class(cls) if obj.name.lower() == wanted), None)

    def schedule(self, name: str) -> IdfObject | None:
        """The schedule object (any ``Schedule:*`` class) named ``name``."""
        wanted = name.lower()
        return next(
            (
                obj
                for obj in self.objects
                if obj.cls.lower().startswith("schedule:")
                and obj.cls.lower() != "schedule:day:list"
                and obj.name.lower() == wanted
            ),
            None,
        )

    def object_names(self) -> set[str]:
        """Upper-cased names of every object, for checking output-variable keys."""
        return {obj.name.upper() for obj in self.objects if obj.fields}

    def set_field(self, cls: str, index: int, value: object) -> None:
        """Set field ``index`` of every object of class ``cls`` (padding with blanks)."""
        for obj in self.of_class(cls):
            while len(obj.fields) <= index:
                obj.fields.append("")
            obj.fields[index] = str(value)
