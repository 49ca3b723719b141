"""Facility-level KPIs beside BOPTEST's core KPI definitions, on a January week of the DOE Small Office.

Period (chosen before any result was seen, never changed after): 2025-01-06 to 2025-01-12, Monday to
Sunday, Chicago TMY3, 6 steps per hour (1,008 steps), the one week run. The building is driven in
lockstep by the schedule controller of controllers/examples/small_office_schedule.toml (occupied
21/24 degC weekdays 06-22 and Saturdays 06-18, setback 15.6/29 degC otherwise: the model's own
night and weekend setbacks) in exchange mode, in this process, so that BOPTEST's time ratio
(controller-plus-exchange time per control step) is measured from the controller's side.

Both sets of figures come from the same historian (bridge.kpi.compute_kpis): twinbridge's
facility-level figures (one fixed comfort band per zone; whole-facility electricity, no gas) and
BOPTEST's definitions (occupied/unoccupied bands over every zone; HVAC electricity plus gas;
per-vector prices and emission factors). Writes bench/results/boptest_kpis.json.

    nice -n 5 python bench/bench_boptest_kpis.py
"""
