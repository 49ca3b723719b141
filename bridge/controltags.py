"""The campus's Control tags as the campus clock writes them: through ``TagServer.set_control`` once
the address space is built, and not at all before (there are no tags to update yet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.server import TagServer


class ControlTags:
    """``<Campus>[.<Building>].Control`` values of the server given by ``Campus.build_address_space``."""

    def __init__(self) -> None:
        self.server: TagServer | None = None

    async def set(self, key: str | None, **values) -> None:
        """Write ``values`` to the Control folder of building ``key`` (the campus's when None)."""
        if self.server is not None:  # before the address space is built there are no tags to update
            await self.server.set_control(key, **values)

    async def set_many(self, keys: list[str | None], **values) -> None:
        """The same ``values`` on the Control folders of every building in ``keys`` (None: the campus's)."""
        if self.server is not None:
            await self.server.set_controls(keys, **values)
