"""Live inputs: a twin building's inputs mirrored from the live building's OPC UA server (docs/live.md).

- ``config``: the ``[buildings.live]`` table of a campus file (endpoint, staleness, node and unit per input).
- ``mirror``: the asyncua subscription that writes the latest live values into the twin's input tags.
"""
