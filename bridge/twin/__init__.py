"""Data-driven digital twin of a building: Gaussian-process models learnt from a historian.

Follows Jain, Nong, Nghiem & Mangharam, "Digital twins for efficient modeling and control of
buildings" (SimBuild 2018): one GP per output (M1 electric power, M2 zone temperature) on time,
weather, control inputs and autoregressive lags, forecast over many steps by the zero-variance
method. Modules, in the order data flows through them:

- ``collect``: run EnergyPlus under a randomized excitation controller, record a historian;
- ``weather``: outdoor temperature and humidity from an EPW file (the twin's disturbances);
- ``features``: design matrix of a feature set with lags l (outputs), m (inputs), p (disturbances);
- ``gp``: the GP regressor (sklearn shape) and ``TwinModel``, one GP per output tag;
- ``evaluate``: rolling multi-step forecasts, metrics and plot;
- ``persist``: save/load a trained ``TwinModel`` with its metadata;
- ``cli``: the ``twin collect|fit|evaluate|serve`` commands.

The engine serving a trained model behind the building's tags is ``bridge.engines.twin``.
See docs/twin.md.
"""
