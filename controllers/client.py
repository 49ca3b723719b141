"""OPC UA access to one building of a twinbridge campus: browse its tags, read a step, write inputs.

Nothing here hard-codes a node id. ``connect`` browses Objects -> <campus> -> <building> ->
Inputs / Outputs / Control by browse name, in the namespace ``urn:twinbridge`` (bridge/protocol.py), and reads each
input's EURange and EngineeringUnits. See docs/protocol.md for the address space and handshake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from asyncua import Client, Node, ua

from bridge.protocol import CAMPUS_FOLDERS, CONTROL, EXCHANGE, INPUTS, NAMESPACE, OUTPUTS, TERMINAL_STATUSES
from bridge.security.client import configure_client
from bridge.security.settings import ClientSecurity
from controllers.base import ControllerError, InputRange

CONTROL_TAGS = ("Status", "Step", "SimTime", "OutputReady")


class BrowseError(ControllerError):
    """The bridge at the endpoint does not (yet) serve the building asked for."""


class ExchangeRefused(ControllerError):
    """Control.Exchange answered with a bad status: ``code`` says why (BadInvalidState: the building's run
    is over; BadTimeout: no next step in time; BadOutOfRange: an input outside its EURange)."""

    def __init__(self, building: str, code: int, name: str):
        super().__init__(f"{building}: Control.Exchange refused: {name}")
        self.code = code


@dataclass(frozen=True)
class StepState:
    """One read of a building's control tags and outputs."""

    status: str
    step: int
    sim_time: dt.datetime  # naive simulation calendar time
    output_ready: bool
    outputs: dict[str, float]

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class BridgeClient:
    """One OPC UA session with a bridge, bound to one building."""

    def __init__(self, endpoint: str, building: str, campus: str | None = None, request_timeout_s: float = 5.0,
                 security: ClientSecurity = ClientSecurity()):
        """``security``: policy, certificate and user of a secured bridge (docs/security.md)."""
        self.endpoint, self.building, self.campus = endpoint, building, campus
        self.security = security
        self.request_timeout_s = request_timeout_s
        self.inputs: dict[str, InputRange] = {}
        self.clock: str | None = None  # the bridge's clock mode (lockstep, paced, fast); None: not shown
        self.ns = 0  # index of urn:twinbridge on this server (may change when the bridge restarts)
        self._client: Client | None = None
        self._input_nodes: dict[str, Node] = {}
        self._output_nodes: dict[str, Node] = {}
        self._control: dict[str, Node] = {}
        self._input_ready: Node | None = None
        self._control_folder: Node | None = None
        self._exchange: Node | None = None
        self._exchange_inputs: list[str] = []
        self._exchange_outputs: list[str] = []

    async def connect(self) -> None:
        """Open a session and browse the building's tags. Raises OSError/TimeoutError/ua.UaError when the
        bridge cannot be reached, BrowseError when it does not serve the building."""
        # asyncua's supervisor probes the server every watchdog interval and drops the connection when a probe
        # is not answered within it (default 1 s): on a loaded machine that dropped a GP-MPC run's session
        # twice in 2 days (bench_gp_mpc). The request timeout is this client's measure of "unresponsive".
        client = Client(self.endpoint, timeout=self.request_timeout_s, watchdog_intervall=self.request_timeout_s)
        await configure_client(client, self.security)
        await client.connect()
        self._client = client
        try:
            await self._browse(client)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except (OSError, TimeoutError, ua.UaError, ConnectionError):
                pass  # the session is gone already

    async def _browse(self, client: Client) -> None:
        try:
            ns = self.ns = await client.get_namespace_index(NAMESPACE)
        except ValueError:
            raise BrowseError(f"{self.endpoint} does not serve namespace {NAMESPACE} (not a twinbridge server?)")
        campuses = await _children(client.nodes.objects, ns)
        if self.campus is not None:
            campuses = {k: v for k, v in campuses.items() if k == self.campus}
        found: list[str] = []
        for campus_name, campus_node in campuses.items():
            buildings = await _children(campus_node, ns)
            found += [f"{campus_name}/{b}" for b in buildings if b not in CAMPUS_FOLDERS]
            if self.building in buildings:
                self.campus = campus_name
                await self._browse_building(client, buildings[self.building], ns)
                return
        where = f"campus {self.campus!r}" if self.campus else "any campus"
        raise BrowseError(f"{self.endpoint}: no building {self.building!r} in {where}; found {found or 'none'}")

    async def _browse_building(self, client: Client, building: Node, ns: int) -> None:
        folders = await _children(building, ns)
        missing = {INPUTS, OUTPUTS, CONTROL} - set(folders)
        if missing:
            raise BrowseError(f"{self.endpoint}: building {self.building!r} lacks folders {sorted(missing)}")
        self._input_nodes = await _children(folders[INPUTS], ns)
        self._output_nodes = await _children(folders[OUTPUTS], ns)
        control = await _children(folders[CONTROL], ns)
        absent = set(CONTROL_TAGS + ("InputReady",)) - set(control)
        if absent:
            raise BrowseError(f"{self.endpoint}: {self.building}/Control lacks {sorted(absent)}")
        self._control = {name: control[name] for name in CONTROL_TAGS}
        self._input_ready = control["InputReady"]
        self._control_folder = folders[CONTROL]
        self._exchange = control.get(EXCHANGE)
        self.clock = str(await control["Clock"].read_value()) if "Clock" in control else None  # older bridges lack it
        if self._exchange is not None:
            self._exchange_inputs, self._exchange_outputs = await client.read_values(
                [control["InputTags"], control["OutputTags"]])
        self.inputs = {}
        for tag, node in self._input_nodes.items():
            eu_range = await (await node.get_child("0:EURange")).read_value()
            unit = await (await node.get_child("0:EngineeringUnits")).read_value()
            self.inputs[tag] = InputRange(tag, float(eu_range.Low), float(eu_range.High), unit.DisplayName.Text or "")

    @property
    def session(self) -> Client:
        if self._client is None:
            raise ConnectionError("not connected")
        return self._client

    async def read_state(self) -> StepState:
        """Control tags and all outputs in one OPC UA Read."""
        nodes = [*self._control.values(), *self._output_nodes.values()]
        values = await self.session.read_values(nodes)
        control = dict(zip(self._control, values))
        outputs = {tag: float(v) for tag, v in zip(self._output_nodes, values[len(self._control):]) if v is not None}
        sim_time = control["SimTime"].replace(tzinfo=None) if control["SimTime"] else dt.datetime.min
        return StepState(str(control["Status"]), int(control["Step"]), sim_time, bool(control["OutputReady"]),
                         outputs)

    async def read_inputs(self) -> dict[str, float]:
        """Current values of the input tags (what the bridge will apply if nobody writes)."""
        values = await self.session.read_values(list(self._input_nodes.values()))
        return {tag: float(v) for tag, v in zip(self._input_nodes, values)}

    def check_inputs(self, values: Mapping[str, float]) -> None:
        """Raise ControllerError naming any tag the building lacks or any value outside its tag's
        EURange (what the bridge would refuse)."""
        unknown = set(values) - set(self._input_nodes)
        if unknown:
            raise ControllerError(f"{self.building}: no input tags {sorted(unknown)} (has {sorted(self._input_nodes)})")
        outside = [f"{tag}={value!r} (range {self.inputs[tag].low:g}..{self.inputs[tag].high:g})"
                   for tag, value in values.items() if tag in self.inputs and not self.inputs[tag].contains(float(value))]
        if outside:
            raise ControllerError(f"{self.building}: input values out of range: {', '.join(outside)}")

    async def write_inputs(self, values: Mapping[str, float]) -> None:
        """All input values in one OPC UA Write; raise ControllerError naming any tag the building lacks,
        any value out of range (``check_inputs``) or any tag the bridge refused."""
        self.check_inputs(values)
        tags = list(values)
        codes = await self.session.write_values([self._input_nodes[t] for t in tags],
                                                [ua.Variant(float(values[t]), ua.VariantType.Double) for t in tags],
                                                raise_on_partial_error=False)
        refused = [f"{t}={values[t]!r} ({code.name})" for t, code in zip(tags, codes) if not code.is_good()]
        if refused:
            raise ControllerError(f"{self.building}: bridge refused input writes: {', '.join(refused)}")

    async def raise_input_ready(self) -> None:
        await self.session.write_values([self._input_ready], [ua.Variant(True, ua.VariantType.Boolean)])

    @property
    def has_exchange(self) -> bool:
        """True when the bridge offers Control.Exchange (a whole lockstep step in one Call)."""
        return self._exchange is not None

    async def exchange(self, values: Mapping[str, float]) -> tuple[int, dict[str, float], bool]:
        """Write every input, raise InputReady and wait for the next step in one OPC UA Call;
        return (step, outputs, applied): applied is False when the bridge computed that step without
        these inputs (a late call). ``values`` must name every input tag; a tag the building lacks or a
        value outside its range raises ControllerError naming it (as ``write_inputs`` does)."""
        self.check_inputs(values)
        try:
            step, outputs, applied = await self._control_folder.call_method(
                self._exchange, ua.Variant([float(values[t]) for t in self._exchange_inputs], ua.VariantType.Double))
        except ua.UaStatusCodeError as exc:
            code = exc.code
            if code in (ua.StatusCodes.BadInvalidState, ua.StatusCodes.BadTimeout, ua.StatusCodes.BadOutOfRange,
                        ua.StatusCodes.BadInvalidArgument):
                raise ExchangeRefused(self.building, code, ua.StatusCode(code).name) from None
            raise
        return int(step), dict(zip(self._exchange_outputs, (float(v) for v in outputs))), bool(applied)


async def _children(node: Node, ns: int) -> dict[str, Node]:
    """Children of ``node`` in the twinbridge namespace, by browse name (one Browse call)."""
    return {ref.BrowseName.Name: Node(node.session, ref.NodeId)
            for ref in await node.get_children_descriptions() if ref.BrowseName.NamespaceIndex == ns}
