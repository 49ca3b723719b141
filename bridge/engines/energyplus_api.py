"""EnergyPlus in the bridge's own process, stepped through the ``pyenergyplus`` callback API.

``run_energyplus`` runs in a worker thread; EnergyPlus calls back into Python at fixed points of
every timestep, and two queues hand the work over between that thread and the event loop:

- before the weather of a run-period timestep is set (where ExternalInterface exchanges, and the only
  calling point where a ``Weather Data`` override acts in the same step), the callback takes that
  step's inputs from a ``queue.Queue`` and sets the actuators (a weather input holding NaN releases
  its actuator: the weather file's value stays; a sky-temperature input sets the two EMS global variables
  its program reads, bridge/sky_temperature.py);
- at the end of every zone timestep it reads the outputs and puts a ``Sample`` on an
  ``asyncio.Queue`` of the event loop.

Semantics are those of the ExternalInterface engine, on the same model copy
(``cosim_files.prepare_model``): the tag map's defaults act during sizing and warm-up, the first
sample is taken at the start of the run period, output variables of the HVAC timestep are
averaged (or summed) over the zone timestep as EnergyPlus reports them. Only one simulation runs
per process: EnergyPlus states in concurrent threads are not independent (docs/bridge.md).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
from collections.abc import Awaitable, Mapping
from pathlib import Path

from pyenergyplus.api import EnergyPlusAPI

from bridge.config import RunPeriod
from bridge.cosim_files import ModelError, actuator_of, output_variable, prepare_model, weather_variables
from bridge.engines.base import EngineFault, Sample
from bridge.engines.energyplus import EnergyPlusEngine, severe_lines
from bridge.idf import Idf
from bridge.sky_temperature import SkyModelError, add_sky_temperature
from bridge.tagmap import SKY_TEMPERATURE, TagMap, follows_weather_file

log = logging.getLogger(__name__)

RUN_PERIOD_WEATHER = 3  # EnergyPlus KindOfSim of a weather-file run period
STOP_JOIN_TIMEOUT_S = 30.0
_STOP = object()  # in the input queue: stop waiting for inputs
_RDD_LINE = re.compile(r"^HVAC,(Average|Sum),(.+?) \[", re.MULTILINE)
_one_simulation = threading.Lock()  # held by the worker thread of the running simulation


def hvac_variables(rdd_text: str) -> dict[str, str]:
    """Upper-cased names of the HVAC-timestep output variables of an ``eplusout.rdd`` (Regular
    format), each with its aggregation over a zone timestep: "Average" or "Sum"."""
    return {match.group(2).upper(): match.group(1) for match in _RDD_LINE.finditer(rdd_text)}


class EnergyPlusApiEngine(EnergyPlusEngine):
    """One EnergyPlus simulation in a thread of this process."""

    def __init__(self, name: str, model: Path, weather: Path, tagmap: TagMap, period: RunPeriod, workdir: Path,
                 start_timeout_s: float = 300.0, step_timeout_s: float = 60.0):
        super().__init__(name, model, weather, tagmap, period, workdir, start_timeout_s, step_timeout_s)
        self._api = EnergyPlusAPI()
        self._state = None
        self._state_lock = threading.Lock()  # stop_simulation from the loop vs delete_state in the worker
        self._thread: threading.Thread | None = None
        self._launch_fault: EngineFault | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._samples: asyncio.Queue = asyncio.Queue()
        self._inputs: queue.Queue = queue.Queue()
        self._stopping = False
        self._over = False  # the worker has put its last item (None or a fault) on the sample queue
        # the worker's side
        self._actuators: list[tuple[str, str, str]] = []
        self._actuator_handles: list[int] | None = None
        self._output_handles: list[int] | None = None
        self._hvac: list[tuple[int, bool]] = []  # (output index, averaged) of HVAC-timestep variables
        self._hvac_sums: list[float] = []
        self._hvac_values: dict[int, float] = {}  # of the last complete zone timestep
        self._sum_dt_h = 0.0
        self._announced = False  # the sample at the start of the run period was sent
        self._step = 0

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    async def launch(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            idf_path = self._write_model()
        except (ModelError, SkyModelError) as exc:
            self._launch_fault = EngineFault(f"{self.name}: {exc}")
            return
        if not _one_simulation.acquire(blocking=False):
            self._launch_fault = EngineFault(
                f"{self.name}: another in-process EnergyPlus simulation is running in this process; "
                "EnergyPlus states in concurrent threads are not independent, use engine 'energyplus'")
            return
        try:
            runtime = self._api.runtime
            self._state = self._api.state_manager.new_state()
            runtime.set_console_output_status(self._state, False)
            for register, callback in (
                    (runtime.callback_begin_zone_timestep_before_init_heat_balance, self._before_heat_balance),
                    (runtime.callback_begin_zone_timestep_before_set_current_weather, self._begin_step),
                    (runtime.callback_end_system_timestep_after_hvac_reporting, self._after_system_step),
                    (runtime.callback_end_zone_timestep_after_zone_reporting, self._end_step)):
                register(self._state, self._guarded(callback))
            argv = ["-w", str(self.weather), "-d", str(self.output_dir), str(idf_path)]
            self._thread = threading.Thread(target=self._run, args=(argv,), name=f"EnergyPlus {self.name}",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            _one_simulation.release()
            raise
        log.info("%s: EnergyPlus started in-process", self.name)

    def _write_model(self) -> Path:
        idf = prepare_model(Idf.read(self.model), self.tagmap, self.period)
        for item in self.tagmap.inputs:
            if item.weather == SKY_TEMPERATURE:
                add_sky_temperature(idf, item, weather_variables(item), external_interface=False)
        self._actuators = [actuator_of(idf, item) for item in self.tagmap.inputs]
        idf.remove_class("Output:VariableDictionary")
        idf.add("Output:VariableDictionary", "Regular")  # eplusout.rdd says which variables are HVAC-timestep
        self.workdir.mkdir(parents=True, exist_ok=True)
        idf_path = self.workdir / "model.idf"
        idf.write(idf_path)
        return idf_path

    async def start(self) -> Sample:
        if self._thread is None and self._launch_fault is None:
            await self.launch()
        if self._launch_fault is not None:
            raise self._launch_fault
        try:
            sample = await self._receive(self.start_timeout_s, f"did not reach the run period within "
                                                               f"{self.start_timeout_s:.0f} s")
        except asyncio.CancelledError:  # the bridge is shutting down while EnergyPlus starts
            await self.stop()
            raise
        if sample is None:
            raise EngineFault(f"{self.name}: EnergyPlus finished before the first timestep")
        return sample

    def step(self, inputs: Mapping[str, float]) -> Awaitable[Sample | None]:
        """Hand the inputs to the waiting simulation now; the returned coroutine gives the outputs."""
        if self._thread is None or self._stopping:
            return self._not_running()
        self._inputs.put([float(inputs[item.tag]) for item in self.tagmap.inputs])
        return self._receive(self.step_timeout_s, f"no answer within {self.step_timeout_s:.0f} s")

    async def _not_running(self) -> None:
        raise EngineFault(f"{self.name}: EnergyPlus is not running")

    async def _receive(self, timeout_s: float, what: str) -> Sample | None:
        if self._samples.empty():
            try:
                item = await asyncio.wait_for(self._samples.get(), timeout_s)
            except asyncio.TimeoutError:
                await self.stop()
                raise EngineFault(f"{self.name}: EnergyPlus {what}", severe_lines(self.output_dir / "eplusout.err")) \
                    from None
        else:
            item = self._samples.get_nowait()
        if isinstance(item, EngineFault):
            await self.stop()
            raise item
        if item is None:
            await self.stop()
            log.info("%s: EnergyPlus finished", self.name)
        return item

    async def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        with self._state_lock:
            if self._state is not None:
                self._api.runtime.stop_simulation(self._state)
        self._inputs.put(_STOP)
        await asyncio.to_thread(thread.join, STOP_JOIN_TIMEOUT_S)
        if thread.is_alive():
            log.warning("%s: the EnergyPlus thread did not end within %.0f s", self.name, STOP_JOIN_TIMEOUT_S)
        self._thread = None

    # ----- the worker thread ----------------------------------------------------------------

    def _run(self, argv: list[str]) -> None:
        try:
            code = self._api.runtime.run_energyplus(self._state, argv)
            if self._stopping:
                self._end(EngineFault(f"{self.name}: EnergyPlus was stopped"))
            elif code != 0:
                self._end(EngineFault(f"{self.name}: EnergyPlus exited with code {code}",
                                      severe_lines(self.output_dir / "eplusout.err")))
            else:
                self._end(None)
        finally:
            with self._state_lock:
                self._api.state_manager.delete_state(self._state)
                self._state = None
            _one_simulation.release()

    def _emit(self, item: Sample | EngineFault | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._samples.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self._halt()

    def _end(self, item: EngineFault | None) -> None:
        if not self._over:
            self._over = True
            self._emit(item)

    def _halt(self) -> None:
        self._stopping = True
        self._api.runtime.stop_simulation(self._state)

    def _fail(self, fault: EngineFault) -> None:
        self._end(fault)
        self._halt()

    def _guarded(self, callback):
        """``callback`` with any exception turned into a fault: ctypes would print and swallow it."""

        def guarded(state) -> None:
            try:
                callback(state)
            except Exception as exc:
                self._fail(EngineFault(f"{self.name}: error in the EnergyPlus callback {callback.__name__}: {exc!r}"))

        return guarded

    def _in_run_period(self, state) -> bool:
        exchange = self._api.exchange
        return exchange.kind_of_sim(state) == RUN_PERIOD_WEATHER and not exchange.warmup_flag(state)

    def _before_heat_balance(self, state) -> None:
        """Sizing and warm-up: the tag map's defaults, like ExternalInterface's initial values."""
        if self._stopping or self._in_run_period(state) or not self._resolve_actuators(state):
            return
        for handle, item in zip(self._actuator_handles, self.tagmap.inputs):
            if item.weather is None:  # weather inputs act in the run period only, as over ExternalInterface
                self._api.exchange.set_actuator_value(state, handle, item.default)

    def _begin_step(self, state) -> None:
        if self._stopping or not self._in_run_period(state):
            return
        if not self._announced:
            if not (self._resolve_actuators(state) and self._resolve_outputs(state)):
                return
            self._announced = True
            self._emit(Sample(0.0, self._read(state)))
        values = self._inputs.get()
        if values is _STOP:
            return
        for handle, item, value in zip(self._actuator_handles, self.tagmap.inputs, values):
            if item.weather == SKY_TEMPERATURE:  # (value, on) of the EMS program that sets the sky schedule
                for global_handle, number in zip(handle, (0.0, 0.0) if follows_weather_file(value) else (value, 1.0)):
                    self._api.exchange.set_ems_global_value(state, global_handle, number)
            elif item.weather is not None and follows_weather_file(value):
                self._api.exchange.reset_actuator(state, handle)  # the weather file's value stays
            else:
                self._api.exchange.set_actuator_value(state, handle, value)

    def _after_system_step(self, state) -> None:
        if self._stopping or not self._resolve_outputs(state):
            return
        exchange = self._api.exchange
        dt_h = exchange.system_time_step(state)
        self._sum_dt_h += dt_h
        for slot, (index, averaged) in enumerate(self._hvac):
            value = exchange.get_variable_value(state, self._output_handles[index])
            self._hvac_sums[slot] += value * dt_h if averaged else value

    def _end_step(self, state) -> None:
        if self._stopping or not self._resolve_outputs(state):
            return
        for slot, (index, averaged) in enumerate(self._hvac):
            total = self._hvac_sums[slot]
            self._hvac_values[index] = total / self._sum_dt_h if averaged and self._sum_dt_h else total
            self._hvac_sums[slot] = 0.0
        self._sum_dt_h = 0.0
        if self._in_run_period(state):
            self._step += 1
            self._emit(Sample(self._step * self.period.step_s, self._read(state)))

    def _read(self, state) -> dict[str, float]:
        get = self._api.exchange.get_variable_value
        return {item.tag: item.convert(self._hvac_values[i] if i in self._hvac_values else get(state, handle))
                for i, (item, handle) in enumerate(zip(self.tagmap.outputs, self._output_handles))}

    def _resolve_actuators(self, state) -> bool:
        """Actuator handles (once); a name EnergyPlus does not know faults the run."""
        if self._actuator_handles is None:
            exchange = self._api.exchange
            handles = [tuple(exchange.get_ems_global_handle(state, name) for name in weather_variables(item))
                       if item.weather == SKY_TEMPERATURE else
                       exchange.get_actuator_handle(state, component_type, control_type, key)
                       for item, (key, component_type, control_type) in zip(self.tagmap.inputs, self._actuators)]
            for handle, item, (key, component_type, control_type) in zip(handles, self.tagmap.inputs, self._actuators):
                if min(handle) < 0 if isinstance(handle, tuple) else handle < 0:
                    self._fail(EngineFault(f"{self.name}: {item.where}: EnergyPlus has no actuator {control_type!r} "
                                           f"of {component_type} {key!r}"))
                    return False
            self._actuator_handles = handles
        return True

    def _resolve_outputs(self, state) -> bool:
        """Output variable handles, once EnergyPlus has registered them all; False until then."""
        if self._output_handles is not None:
            return True
        exchange = self._api.exchange
        if not exchange.api_data_fully_ready(state):
            return False
        handles = []
        for item in self.tagmap.outputs:
            key, variable = output_variable(item)
            handle = exchange.get_variable_handle(state, variable, key)
            if handle < 0:
                self._fail(EngineFault(f"{self.name}: {item.where}: EnergyPlus has no output variable {variable!r} "
                                       f"for key {key!r}"))
                return False
            handles.append(handle)
        hvac = hvac_variables((self.output_dir / "eplusout.rdd").read_text(errors="replace"))
        self._hvac = [(i, hvac[output_variable(item)[1].upper()] == "Average")
                      for i, item in enumerate(self.tagmap.outputs) if output_variable(item)[1].upper() in hvac]
        self._hvac_sums = [0.0] * len(self._hvac)
        self._output_handles = handles
        return True
