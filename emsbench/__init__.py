"""Shared core of emsbench: the information model, the indicator spec model, the wire
model of a submission and its DSSE signing. Node and hub both import from here and
nowhere else from each other."""

__version__ = "0.1.0"
