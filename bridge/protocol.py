"""What the bridge and its clients agree on: the OPC UA namespace, node paths, status values, clock
and engine kinds. The server, the campus clock, the controllers and tracking import these; nothing
else spells them out. docs/protocol.md describes the same address space for people.

Address space (string node ids in namespace ``NAMESPACE``)::

    Objects/<Campus>/Control/{Status, StatusCode, Clock, SimTime, SimTimeSeconds, Step, Fault, Start() ...}
    Objects/<Campus>/Outputs/TotalElectricPower
    Objects/<Campus>/<Building>/Inputs/<Tag>
    Objects/<Campus>/<Building>/Outputs/<Tag>
    Objects/<Campus>/<Building>/Control/{..., OutputReady, InputReady, InputTags, OutputTags, Exchange()}

A node's id is its path below Objects joined with dots: ``<Campus>.<Building>.Inputs.<Tag>``.
"""

from __future__ import annotations

from enum import StrEnum

NAMESPACE = "urn:twinbridge"

INPUTS, OUTPUTS, CONTROL, KPIS = "Inputs", "Outputs", "Control", "KPIs"
CAMPUS_FOLDERS = (CONTROL, OUTPUTS, KPIS)  # beside the buildings in Objects/<Campus>
TOTAL_POWER = "TotalElectricPower"  # the campus output: sum of the buildings' electric_power outputs, kW
METHODS = ("Start", "Pause", "Resume", "Reset", "Stop")  # in every Control folder, campus and building
EXCHANGE = "Exchange"  # a building's whole controller step in one call (docs/protocol.md)


class Status(StrEnum):
    """Run status of a campus or a building (its ``Control.Status``; ``Control.StatusCode`` = ``code``)."""

    IDLE = "Idle"
    RUNNING = "Running"
    PAUSED = "Paused"
    FINISHED = "Finished"
    STOPPED = "Stopped"
    FAULTED = "Faulted"
    RESET = "Reset"  # the campus only, for the moment between one run and the next

    @property
    def code(self) -> int:
        return _STATUS_CODES[self]

    @property
    def terminal(self) -> bool:
        """The run is over: Finished, Stopped or Faulted."""
        return self in (Status.FINISHED, Status.STOPPED, Status.FAULTED)


_STATUS_CODES = {Status.IDLE: 0, Status.RUNNING: 1, Status.FINISHED: 2, Status.RESET: 3, Status.STOPPED: 4,
                 Status.PAUSED: 5, Status.FAULTED: -1}
TERMINAL_STATUSES = tuple(s.value for s in Status if s.terminal)


class Clock(StrEnum):
    """How the campus clock advances (docs/bridge.md); served as ``<Campus>.Control.Clock``."""

    LOCKSTEP = "lockstep"  # each step waits for the controllers' InputReady (or Exchange)
    PACED = "paced"  # simulated time runs ``speed`` times faster than wall time
    FAST = "fast"  # as fast as the engines go
    REALTIME = "realtime"  # simulated time is wall-clock time (at ``speed`` 1), in true UTC (bridge.realtime)


class EngineKind(StrEnum):
    """What simulates a building (``engine`` of a building table)."""

    ENERGYPLUS = "energyplus"  # EnergyPlus over ExternalInterface, in its own process
    ENERGYPLUS_API = "energyplus-api"  # EnergyPlus through its Python API, in a child process
    TWIN = "twin"  # the Gaussian-process twin (bridge/twin)


class BoptestKpi(StrEnum):
    """BOPTEST's core KPIs (Blum et al. 2021, J. Building Performance Simulation 14(5); BOPTEST's
    ``KPI_Calculator.get_core_kpis``), under BOPTEST's own names: keys of the run KPIs and tags of the
    KPIs folders, beside the facility-level figures (bridge/kpi.py, docs/kpis.md)."""

    TDIS_TOT = "tdis_tot"  # thermal discomfort, occupied/unoccupied bands, averaged over every zone, K.h/zone
    IDIS_TOT = "idis_tot"  # indoor-air-quality discomfort (CO2 above a limit), ppm.h/zone
    ENER_TOT = "ener_tot"  # HVAC energy, every fuel, kWh/m2
    COST_TOT = "cost_tot"  # HVAC energy cost, every fuel at its price, $/m2
    EMIS_TOT = "emis_tot"  # HVAC emissions, every fuel at its factor, kgCO2/m2
    PELE_TOT = "pele_tot"  # peak 15-minute HVAC electric demand, kW/m2
    PGAS_TOT = "pgas_tot"  # peak 15-minute gas demand, kW/m2
    PDIH_TOT = "pdih_tot"  # peak 15-minute district-heating demand, kW/m2
    TIME_RAT = "time_rat"  # controller-plus-exchange time per control step / control step, s/s


CLOCK_MODES = tuple(c.value for c in Clock)  # plain strings, as they read in a file or an error message
ENGINE_KINDS = tuple(e.value for e in EngineKind)


def node_path(campus: str, *parts: str) -> str:
    """The string node id of a node below ``Objects/<campus>``: ``node_path("C", "B", INPUTS, "Tag")`` is
    ``"C.B.Inputs.Tag"``; ``node_path("C", CONTROL, "Status")`` the campus status."""
    return ".".join((campus, *parts))
