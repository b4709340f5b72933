"""Spec validation: schema stage, then semantic stage, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emsbench.specs import SpecError, default_spec_dir, load_specs


def _good() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((default_spec_dir() / "BCPR.yaml").read_text(encoding="utf-8"))


def _write(directory: Path, name: str, body: dict) -> None:  # type: ignore[type-arg]
    (directory / name).write_text(yaml.safe_dump(body), encoding="utf-8")


def test_every_problem_in_every_file_is_reported_together(tmp_path: Path) -> None:
    schema_bad = _good() | {"id": "bad id", "unit": "furlongs"}
    del schema_bad["population"]
    _write(tmp_path, "ONE.yaml", schema_bad)
    semantic_bad = _good() | {"id": "TWO", "strata": ["no_such_column"],
                              "numerator": "no_such_column > 1", "bins": {"width": 1, "count": 3}}
    _write(tmp_path, "Two.yaml", semantic_bad)
    _write(tmp_path, "THREE.yaml", _good() | {"id": "THREE"})
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    text = "\n".join(info.value.problems)
    # schema stage: all three problems of ONE.yaml
    assert "ONE.yaml: id:" in text and "ONE.yaml: unit:" in text and "ONE.yaml: population:" in text
    # semantic stage: all problems of Two.yaml
    assert "id 'TWO' must equal the file name 'Two'" in text
    assert "stratum 'no_such_column' is not a column" in text
    assert "numerator `no_such_column > 1`: 'no_such_column' is not a column" in text
    assert "a share spec takes no 'bins'" in text
    assert "expected stratum keys" in text  # the test case no longer matches the strata
    assert "THREE" not in text
    assert len(info.value.problems) == 9  # 3 schema + 4 semantic + 2 test cases


def test_distribution_needs_bins_measure_and_quantile(tmp_path: Path) -> None:
    body = _good() | {"id": "DIST", "type": "distribution"}
    _write(tmp_path, "DIST.yaml", body)
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    problems = info.value.problems
    for need in ("measure", "bins", "quantile"):
        assert f"DIST.yaml: a distribution spec needs '{need}'" in problems
    assert "DIST.yaml: a distribution spec takes no 'numerator'" in problems


def test_hash_changes_with_the_definition_not_with_tests(tmp_path: Path) -> None:
    base = load_specs(only=["BCPR"])[0]
    _write(tmp_path, "BCPR.yaml", _good() | {"tests": _good()["tests"][:1]})
    assert load_specs(tmp_path)[0].sha256 == base.sha256
    _write(tmp_path, "BCPR.yaml", _good() | {"numerator": "coalesce(ca_bystander_aed, false)"})
    assert load_specs(tmp_path)[0].sha256 != base.sha256


def test_unknown_ids_and_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no \\*.yaml"):
        load_specs(tmp_path)
    with pytest.raises(SpecError, match="unknown indicator id 'NOPE'"):
        load_specs(only=["NOPE"])


def test_strata_need_a_closed_code_set(tmp_path: Path) -> None:
    # An identifier or a timestamp as a stratum would put row-level values in the outbox.
    for column in ("mission_id", "call_received", "patient_age"):
        _write(tmp_path, "LEAK.yaml", _good() | {"id": "LEAK", "strata": [column], "tests": [
            {"name": "t", "rows": [{}], "expect": [{"stratum": {column: "x"},
                                                  "numerator": 0, "denominator": 0}]}]})
        with pytest.raises(SpecError) as info:
            load_specs(tmp_path)
        assert f"stratum '{column}' has no closed code set" in "\n".join(info.value.problems)


def test_catalogue_hash_follows_every_spec_definition(tmp_path: Path) -> None:
    from emsbench.specs import catalogue_sha256

    specs = load_specs()
    assert catalogue_sha256(specs) == catalogue_sha256(list(reversed(specs)))  # order-free
    assert catalogue_sha256(specs[1:]) != catalogue_sha256(specs)
    _write(tmp_path, "BCPR.yaml", _good() | {"numerator": "coalesce(ca_bystander_aed, false)"})
    changed = [s for s in specs if s.id != "BCPR"] + load_specs(tmp_path)
    assert catalogue_sha256(changed) != catalogue_sha256(specs)


def test_problems_carry_the_file_and_line_and_suggest_columns(tmp_path: Path) -> None:
    import re

    text = (default_spec_dir() / "BCPR.yaml").read_text(encoding="utf-8")
    text = text.replace("AND coalesce(ca_resus_attempted, false)",
                        "AND coalesce(ca_resus_attemted, false)")
    text = text.replace("ca_witnessed_by: family, ca_bystander_cpr: true}",
                        "ca_witnessed_by: family, ca_bystandr_cpr: true}")
    (tmp_path / "BCPR.yaml").write_text(text, encoding="utf-8")
    lines = text.splitlines()

    def line_of(needle: str) -> int:
        return next(i + 1 for i, line in enumerate(lines) if needle in line)

    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    located = {p.line: p for p in info.value.located}
    expr = located[line_of("ca_resus_attemted")]
    assert expr.file == "BCPR.yaml" and expr.path == tmp_path / "BCPR.yaml"
    assert expr.message.endswith("did you mean 'ca_resus_attempted'?")
    row = located[line_of("ca_bystandr_cpr")]
    assert re.fullmatch(rf"BCPR\.yaml:{line_of('ca_bystandr_cpr')}: tests\[0\]\.rows\[\d+\]: "
                        r"unknown column 'ca_bystandr_cpr'; did you mean 'ca_bystander_cpr'\?",
                        str(row)), str(row)
    # ``problems`` (and the exception's text) keep the form without a line
    assert info.value.problems == [p.text for p in info.value.located]
    assert all(p.startswith("BCPR.yaml: ") for p in info.value.problems)
    assert f"BCPR.yaml:{line_of('ca_resus_attemted')}: population" in str(expr)


def test_schema_problems_have_lines_too(tmp_path: Path) -> None:
    text = (default_spec_dir() / "BCPR.yaml").read_text(encoding="utf-8")
    text = text.replace("unit: percent", "unit: percnt").replace("strata:", "strat:")
    (tmp_path / "BCPR.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    shown = sorted(str(p) for p in info.value.located)
    lines = text.splitlines()
    unit = lines.index("unit: percnt") + 1
    strat = next(i + 1 for i, line in enumerate(lines) if line.startswith("strat:"))
    assert shown == sorted([
        f"BCPR.yaml:{unit}: unit: Input should be 'percent', 'minutes', 'per_1000', "
        "'per_100k' or 'ratio'",
        f"BCPR.yaml:{strat}: strat: Extra inputs are not permitted; did you mean 'strata'?"])


def test_yaml_lines_find_keys_items_and_words() -> None:
    from emsbench.specs import YamlLines, did_you_mean, loc_text

    text = ("id: X\n"                        # 1
            "population: >-\n"               # 2
            "  a = 1\n"                      # 3
            "  AND b_col = 2\n"              # 4
            "tests:\n"                       # 5
            "  - name: t\n"                  # 6
            "    rows:\n"                    # 7
            "      - {a: 1}\n"               # 8
            "      - a: 2\n"                 # 9
            "        b: 3\n")                # 10
    at = YamlLines(text)
    assert at.line(("id",)) == 1
    assert at.line(("population",), needle="b_col") == 4
    assert at.line(("population",), needle="nowhere") == 2
    assert at.line(("tests", 0, "rows", 0, "a")) == 8
    assert at.line(("tests", 0, "rows", 1, "b")) == 10
    assert at.line(("tests", 0, "expect")) == 6  # missing: the deepest part that exists
    assert at.line(("tests", 5)) == 5
    assert YamlLines("a: [").line(("a",)) == 1  # unparseable: the first line
    assert loc_text(("tests", 0, "rows", 2, "patient_age")) == "tests[0].rows[2].patient_age"
    assert did_you_mean("urbanicty", ["urbanicity", "region"]) == "; did you mean 'urbanicity'?"
    assert did_you_mean("zzz", ["urbanicity"]) == ""


def test_fingerprint_ignores_layout_and_case_but_not_meaning(tmp_path: Path) -> None:
    base = load_specs(only=["BCPR"])[0]
    body = _good()
    body["population"] = ("COALESCE( ca_arrest ,FALSE )\n and coalesce(CA_RESUS_ATTEMPTED, false)"
                          "   AND coalesce(ca_witnessed_by,'unknown')<>'ems'")
    _write(tmp_path, "BCPR.yaml", body)
    assert load_specs(tmp_path)[0].sha256 == base.sha256
    body["population"] = body["population"].replace("'ems'", "'EMS'")  # a literal: meaning
    _write(tmp_path, "BCPR.yaml", body)
    assert load_specs(tmp_path)[0].sha256 != base.sha256


def test_a_released_version_cannot_change_meaning(tmp_path: Path) -> None:
    import json

    base = load_specs(only=["BCPR"])[0]
    (tmp_path / "releases").mkdir()
    (tmp_path / "releases" / "2026.1.json").write_text(json.dumps(
        {"name": "2026.1", "specs": [{"id": "BCPR", "version": "1.0.0",
                                       "fingerprint": base.sha256}]}), encoding="utf-8")
    changed = _good() | {"numerator": "coalesce(ca_bystander_aed, false)"}
    _write(tmp_path, "BCPR.yaml", changed)
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    [problem] = info.value.problems
    assert problem.startswith("BCPR.yaml: version 1.0.0 was released in 2026.1") and \
        "needs a new version" in problem
    _write(tmp_path, "BCPR.yaml", changed | {"version": "1.1.0"})  # bumped: fine
    assert load_specs(tmp_path)[0].version == "1.1.0"
