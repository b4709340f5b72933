"""Indicator specifications: one YAML file per indicator, named after its id.

Each file is the complete, versioned definition of one indicator (population, numerator or
measure as DuckDB SQL over the common model table ``missions``, strata, output type) and
carries its own test cases. ``emsbench.specs`` loads and validates them; node and hub
compare their content hashes so both sides compute and merge the same definition.
"""
