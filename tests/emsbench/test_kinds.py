"""The kind registry: every spec type has one kind module that owns its rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsbench.kinds import KINDS, kind_of
from emsbench.specs import SpecError, load_specs, validate_files

SHARE_PER_100K = """\
id: OHCA-SHARE
version: 1.0.0
title: Arrests per 100 000 missions
description: The old reading of per_100k, a share of missions scaled up.
unit: per_100k
direction: descriptive
type: share
population: "true"
numerator: coalesce(ca_arrest, false)
strata: []
tests:
  - name: one of two
    rows: [{ca_arrest: true}, {ca_arrest: false}]
    expect: [{stratum: {}, numerator: 1, denominator: 2}]
"""


def test_a_share_per_100k_is_refused_it_is_not_a_population_rate(tmp_path: Path) -> None:
    """Finding: `unit: per_100k` multiplied a share of missions by 100,000. A share is a
    percentage; a rate per inhabitants is the rate kind, over the official population."""
    path = tmp_path / "OHCA-SHARE.yaml"
    path.write_text(SHARE_PER_100K, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        validate_files([path])
    assert any("a share is published in percent, not 'per_100k'" in p for p in info.value.problems)


def test_every_catalogue_spec_has_a_kind_and_a_unit_it_allows() -> None:
    specs = load_specs()
    assert {s.type for s in specs} == set(KINDS) == {"share", "distribution", "rate", "ratio"}
    for spec in specs:
        kind = kind_of(spec)
        assert kind.name == spec.type and spec.unit in kind.units, spec.id


def test_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown indicator type 'proportion'; known: "
                                         "distribution, rate, ratio, share"):
        kind_of("proportion")
