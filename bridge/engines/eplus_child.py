"""Runs EnergyPlus in this (child) process through the pyenergyplus API, with the CLI's argv.

``python -m bridge.engines.eplus_child -w weather.epw -d outdir model.idf``; exit code is
EnergyPlus's. The bridge starts one such process per building.
"""

import sys


def main() -> int:
    from pyenergyplus.api import EnergyPlusAPI

    api = EnergyPlusAPI()
    state = api.state_manager.new_state()
    api.runtime.set_console_output_status(state, False)
    return api.runtime.run_energyplus(state, sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
