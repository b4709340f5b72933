"""The closed spec language: every exfiltration tried as an attacker would is refused by
spec validation, naming the construct; what indicator definitions need is allowed.

Each fixture is a spec a hostile or careless author could send to a working group. Before
the closed language, every one of the first ones passed validation and its result reached
the signed outbox (issue "A spec language that cannot leak").
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emsbench.spec_language import expression_problems
from emsbench.specs import SpecError, default_spec_dir, load_specs

# (field, expression, what the refusal must name)
EXFILTRATIONS = {
    # the issue's findings
    "scalar subquery broadcasts one patient's age": (
        "population", "patient_age = (SELECT max(patient_age) FROM missions)", "a subquery"),
    "scalar subquery broadcasts one call's minute": (
        "population", "date_part('minute', call_received) = "
        "(SELECT min(date_part('minute', call_received)) FROM missions)", "a subquery"),
    "current_setting": ("population", "current_setting('threads') = '2'",
                        "current_setting()"),
    "duckdb_settings": ("population", "(SELECT count(*) FROM duckdb_settings()) > 0",
                        "a subquery"),
    "duckdb_databases": ("population", "(SELECT count(*) FROM duckdb_databases()) > 1",
                         "a subquery"),
    "duckdb_tables": ("population", "(SELECT count(*) FROM duckdb_tables()) > 1",
                      "a subquery"),
    "query()": ("population", "query('SELECT 1') IS NOT NULL", "query()"),
    "rejected rows through another table": (
        "population", "EXISTS (SELECT 1 FROM checked WHERE _reject_reason IS NOT NULL)",
        "a subquery"),
    "four-way self-join": (
        "population", "(SELECT count(*) FROM missions a, missions b, missions c, missions d) > 0",
        "a subquery"),
    "string doubling": ("population", "length(repeat('x', 1000000000)) > 0", "length()"),
    # more, as an attacker would try
    "identifier in an expression": ("population", "mission_id = 'NO-2025-000001'",
                                    "identifier"),
    "identifier in capitals": ("population", "MISSION_ID = 'NO-2025-000001'", "identifier"),
    "identifier quoted": ("population", '"Mission_Id" = \'NO-2025-000001\'', "identifier"),
    "identifier smuggled through LIKE": ("population", "mission_id LIKE 'NO-2025-0000%'",
                                         "identifier"),
    "timestamp cast to text and matched": (
        "population", "CAST(call_received AS VARCHAR) LIKE '2025-03-01%'",
        "compare a code column with a literal pattern"),
    "value cast to text": ("population", "patient_age::VARCHAR = '80'", "a cast to VARCHAR"),
    "window function": ("population", "row_number() OVER () = 1", "window"),
    "aggregate": ("population", "max(patient_age) > 100", "max()"),
    "count star": ("population", "count(*) > 0", "count_star()"),
    "qualified column of another table": ("population", "checked.patient_age > 80",
                                          "not a column"),
    "unknown column": ("numerator", "_reject_reason IS NULL", "not a column"),
    "table function read_csv": ("population", "read_csv('/etc/passwd') IS NULL", "read_csv()"),
    "variables": ("population", "getvariable('secret') IS NULL", "getvariable()"),
    "parameter": ("population", "patient_age > $1", "a query parameter"),
    "list building": ("measure_or_numerator", "list_value(patient_age, 1)[1] > 0",
                      "ARRAY_EXTRACT"),
    "string building": ("population", "concat(urbanicity, region) = 'urbanX'", "concat()"),
    "regular expression on an identifier": (
        "population", "regexp_matches(mission_id, '^NO')", "regexp_matches()"),
    "hash of a row": ("population", "hash(patient_age, call_received) % 1000 = 7", "hash()"),
    "random sampling of rows": ("population", "random() < 0.001", "random()"),
    "clock": ("population", "now() > call_received", "now()"),
    "LIKE with a column as pattern": ("population",
                                      "impression_primary LIKE impression_secondary",
                                      "literal pattern"),
    "a second statement": ("numerator", "true; COPY missions TO '/tmp/x.csv'", "';'"),
    "a comment hiding the rest": ("numerator", "true --", "comments"),
    "breaking out of the expression": (
        "numerator", "true) AS n FROM missions WHERE (patient_age > 100",
        "FROM, WHERE"),
    "EXISTS subquery": ("population", "EXISTS (SELECT 1 FROM missions WHERE patient_age > 110)",
                        "a subquery"),
    "IN subquery": ("population",
                    "patient_age IN (SELECT patient_age FROM missions ORDER BY 1 LIMIT 1)",
                    "a subquery"),
    "lambda": ("population", "list_filter([1, 2], x -> x > 1) IS NULL", "list_filter()"),
}


def _spec_with(field: str, expr: str) -> dict:  # type: ignore[type-arg]
    path = default_spec_dir() / ("RESP-MED.yaml" if field.startswith("measure") else
                                 "BCPR.yaml")
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body[field.split("_or_")[0]] = expr
    return body


@pytest.mark.parametrize("name", sorted(EXFILTRATIONS))
def test_every_exfiltration_is_refused_at_validation(tmp_path: Path, name: str) -> None:
    field, expr, construct = EXFILTRATIONS[name]
    body = _spec_with(field, expr)
    (tmp_path / f"{body['id']}.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    [problem] = [p for p in info.value.problems if f"{field.split('_or_')[0]} `" in p]
    assert problem.startswith(f"{body['id']}.yaml: ")  # the file
    assert expr.split()[0][:10] in problem  # the expression
    assert construct in problem, problem  # the construct


def test_there_are_at_least_twenty_attacks_beyond_the_issue() -> None:
    assert len(EXFILTRATIONS) - 10 >= 15


@pytest.mark.parametrize("expr", [
    "coalesce(ca_arrest, false) AND coalesce(ca_witnessed_by, 'unknown') <> 'ems'",
    "date_diff('second', call_received, arrived_scene) / 60.0",
    "service_type IN ('emergency', 'intercept') AND NOT coalesce(cancelled, false)",
    "patient_age BETWEEN 18 AND 64 AND patient_sex IS NOT NULL",
    "CASE WHEN urgency_level = 'U1' THEN 8 ELSE 20 END >= 10",
    "impression_primary LIKE 'I6%' OR starts_with(impression_secondary, 'I63')",
    "call_received + INTERVAL 5 MINUTE < arrived_scene",
    "CAST(patient_age AS DOUBLE) / 10 > 8.0",
    "least(abs(date_diff('minute', at_patient, stemi_ecg12_time)), 90) <= 10",
    "year(call_received) = 2025 AND month(call_received) IN (1, 2, 12)",
])
def test_what_indicators_need_is_allowed(expr: str) -> None:
    assert expression_problems(expr) == []


def test_the_whole_catalogue_is_in_the_language() -> None:
    for spec in load_specs():
        for name, expr in spec.expressions().items():
            assert expression_problems(expr) == [], (spec.id, name)
