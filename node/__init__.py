"""National node: read local data, compute indicators, send signed aggregates."""
