"""Errors of the twin that the bridge's command line reports, importable without the twin itself
(its modules load numpy and scikit-learn, which ``twinbridge run`` should not pay for)."""

from bridge.errors import TwinbridgeError


class ModelFileError(TwinbridgeError, ValueError):
    """A model file that cannot be loaded or does not fit the building; the message says why."""


class ModelError(TwinbridgeError, ValueError):
    """A model used wrongly: not fitted, bad settings, or a training or forecast window it cannot use
    (an unreadable time, no rows, forecasts of its own training rows); the message says what."""
