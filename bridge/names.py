"""Names the bridge gives to things of its own, which buildings and tags must not take.

A building becomes a table of the historian and a folder beside ``Control``, ``Outputs`` and
``KPIs`` in ``Objects/<Campus>``; a tag becomes a column of its building's table beside ``step``,
``sim_time_s`` and ``time``. SQLite does not tell names apart by case, so neither do these checks.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.protocol import CAMPUS_FOLDERS

HISTORIAN_TABLES = ("meta", "tags")  # beside one table per building (bridge/historian.py)
ROW_COLUMNS = ("step", "sim_time_s", "time")  # the first columns of a building's table, before its tags
SQLITE_PREFIX = "sqlite_"  # SQLite keeps table names with this prefix for itself


def building_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a building, or None."""
    taken = {n.lower(): n for n in (*HISTORIAN_TABLES, *CAMPUS_FOLDERS)}
    if name.lower() in taken:
        return (f"building name {name!r} is taken by the bridge (historian tables {list(HISTORIAN_TABLES)}, "
                f"campus folders {list(CAMPUS_FOLDERS)}; case does not matter)")
    if name.lower().startswith(SQLITE_PREFIX):
        return f"building name {name!r} starts with {SQLITE_PREFIX!r}, which SQLite keeps for its own tables"
    return None


def tag_name_problem(tag: str) -> str | None:
    """Why ``tag`` cannot name a tag, or None."""
    if tag.lower() in ROW_COLUMNS:
        return (f"tag {tag!r} is taken by the historian's own columns {list(ROW_COLUMNS)} "
                "(case does not matter)")
    return None


def first_repeat(names: Sequence[str]) -> tuple[int, int] | None:
    """Positions (earlier, later) of the first name of ``names`` that repeats an earlier one, case ignored."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        earlier = seen.setdefault(name.lower(), i)
        if earlier != i:
            return earlier, i
    return None


def repeated(names: Sequence[str]) -> list[str]:
    """The names that occur more than once in ``names`` (case counts), sorted."""
    return sorted({name for name in names if names.count(name) > 1})
