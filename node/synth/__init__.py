"""Synthetic mission data in the common information model, calibrated per country.

``calibration`` holds the per-country parameters (published figures where they exist,
marked assumptions where they do not) for 2025, and ``trends`` moves them to other years;
``generator.generate`` streams a Parquet file of
``emsbench.model.input_schema()`` chunk by chunk; ``cli`` adds the ``emsbench synth``
command. The package itself imports nothing heavy so that ``emsbench --help`` stays fast.
"""
