"""``emsbench specs``: new, validate, test, run and docs as a working group meets them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from emsbench.cli import main
from emsbench.specs import load_specs

# A valid share spec; each broken file below changes one thing. '@ID@' is the id.
BASE = """\
id: @ID@
version: 1.0.0
title: Broken on purpose
description: A spec broken on purpose, in one way per file.
unit: percent
direction: higher_is_better
type: share
population: >-
  coalesce(ca_arrest, false)
  AND coalesce(ca_resus_attempted, false)
numerator: coalesce(ca_bystander_cpr, false)
strata: [urbanicity]
tests:
  - name: by area
    rows:
      - {ca_arrest: true, ca_resus_attempted: true, urbanicity: urban, ca_bystander_cpr: true}
      - {ca_arrest: true, ca_resus_attempted: true, urbanicity: rural}
      - {ca_arrest: false, urbanicity: rural, patient_age: 80}
    expect:
      - {stratum: {urbanicity: rural}, numerator: 0, denominator: 1}
      - {stratum: {urbanicity: urban}, numerator: 1, denominator: 1}
"""

DIST = BASE.replace("type: share", "type: distribution").replace(
    "numerator: coalesce(ca_bystander_cpr, false)",
    "measure: patient_age\nquantile: 0.5").replace(
    "numerator: 0, denominator: 1", "bins: {}").replace(
    "numerator: 1, denominator: 1", "bins: {}").replace("unit: percent", "unit: minutes")

def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# file name → (text, the message it must give, a text on the line the message must name;
# None: a problem of the whole file, without a line)
BROKEN: dict[str, tuple[str, str, str | None]] = {
    "BAD-YAML.yaml": (
        _edit(BASE, "title: Broken on purpose", "title: Response time: median"),
        "cannot read YAML: mapping values are not allowed here", "title:"),
    "NOT-A-MAPPING.yaml": ("- just\n- a list\n", "the file must hold a mapping", "- just"),
    "MISSING-FIELD.yaml": (_edit(BASE, "title: Broken on purpose\n", ""),
                           "title: Field required", "id:"),
    "bad_id.yaml": (_edit(BASE, "id: @ID@", "id: bad_id"), "id: String should match pattern",
                    "id:"),
    "NAME-MISMATCH.yaml": (_edit(BASE, "id: @ID@", "id: OTHER-NAME"),
                           "id 'OTHER-NAME' must equal the file name 'NAME-MISMATCH'", "id:"),
    "UNKNOWN-UNIT.yaml": (_edit(BASE, "unit: percent", "unit: furlongs"),
                          "unit: Input should be 'percent', 'minutes', 'per_1000', "
                          "'per_100k' or 'ratio'", "unit:"),
    "MISSPELT-FIELD.yaml": (
        _edit(BASE, "numerator: coalesce", "numerater: coalesce"),
        "numerater: Extra inputs are not permitted; did you mean 'numerator'?", "numerater:"),
    "SHARE-NO-NUMERATOR.yaml": (
        _edit(BASE, "numerator: coalesce(ca_bystander_cpr, false)\n", ""),
        "a share spec needs 'numerator'", "type:"),
    "DIST-NO-BINS.yaml": (DIST, "a distribution spec needs 'bins'", "type:"),
    "MISSPELT-COLUMN.yaml": (
        _edit(BASE, "  AND coalesce(ca_resus_attempted, false)",
              "  AND coalesce(ca_resus_attemted, false)"),
        "'ca_resus_attemted' is not a column of the common model (write the bare column "
        "name); did you mean 'ca_resus_attempted'?", "ca_resus_attemted"),
    "SUBQUERY.yaml": (
        _edit(BASE, "numerator: coalesce(ca_bystander_cpr, false)",
              "numerator: (SELECT max(ca_bystander_cpr) FROM missions)"),
        "a subquery is not allowed", "numerator:"),
    "BAD-FUNCTION.yaml": (
        _edit(BASE, "  coalesce(ca_arrest, false)",
              "  coalesce(ca_arrest, false) AND current_setting('threads') > 0"),
        "the function current_setting() is not allowed", "current_setting"),
    "NO-CODE-SET.yaml": (
        _edit(BASE, "strata: [urbanicity]", "strata: [patient_age]").replace(
            "urbanicity: rural}, n", "patient_age: '80'}, n").replace(
            "urbanicity: urban}, n", "patient_age: '81'}, n"),
        "stratum 'patient_age' has no closed code set", "strata:"),
    "MISSPELT-STRATUM.yaml": (
        _edit(BASE, "strata: [urbanicity]", "strata: [urbanicty]").replace(
            "{urbanicity: rural}, n", "{urbanicty: rural}, n").replace(
            "{urbanicity: urban}, n", "{urbanicty: urban}, n"),
        "stratum 'urbanicty' is not a column of the common model; did you mean 'urbanicity'?",
        "strata:"),
    "ROW-COLUMN.yaml": (
        _edit(BASE, "urbanicity: rural}\n", "urbanicity: rural, ca_bystandr_cpr: false}\n"),
        "tests[0].rows[1]: unknown column 'ca_bystandr_cpr'; did you mean 'ca_bystander_cpr'?",
        "ca_bystandr_cpr"),
    "ROW-TYPE.yaml": (
        _edit(BASE, "patient_age: 80}", 'patient_age: "eighty"}'),
        'tests[0].rows[2].patient_age: expected integer, got "eighty"', "eighty"),
    "ROW-CODE.yaml": (
        _edit(BASE, "urbanicity: rural, patient_age: 80", "urbanicity: rurall, patient_age: 80"),
        'tests[0].rows[2].urbanicity: "rurall" is not in the code set of urbanicity '
        "(urban, rural); did you mean 'rural'?", "rurall"),
    "STRATUM-KEYS.yaml": (
        _edit(BASE, "{stratum: {urbanicity: rural}", "{stratum: {urbanicty: rural}"),
        "tests[0].expect[0]: expected stratum keys ['urbanicty'] differ from strata "
        "['urbanicity']; did you mean 'urbanicity'?", "urbanicty"),
    "STRATUM-VALUE.yaml": (
        _edit(BASE, "{stratum: {urbanicity: urban}", "{stratum: {urbanicity: urbn}"),
        "tests[0].expect[1].stratum.urbanicity: 'urbn' is not a value of urbanicity "
        "(urban, rural, unknown); did you mean 'urban'?", "urbn"),
    "SHARE-EXPECT.yaml": (
        _edit(BASE, "numerator: 1, denominator: 1}", "numerator: 1}"),
        "tests[0].expect[1]: a share expectation needs numerator and denominator",
        "numerator: 1}"),
    "DUP.yaml": (_edit(BASE, "id: @ID@", "id: DUP"),
                 "spec id 'DUP' is defined more than once (also in DUP-COPY.yaml)", "id:"),
    "DUP-COPY.yaml": (_edit(BASE, "id: @ID@", "id: DUP"),
                      "id 'DUP' must equal the file name 'DUP-COPY'", "id:"),
    "OLD-SUFFIX.yml": (BASE, "not read: spec files end in .yaml", None),
}


def _line_of(text: str, needle: str | None) -> int | None:
    if needle is None:
        return None
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name, (text, _, _) in BROKEN.items():
        (folder / name).write_text(text.replace("@ID@", name.split(".")[0]), encoding="utf-8")
    (folder / "GOOD.yaml").write_text(BASE.replace("@ID@", "GOOD"), encoding="utf-8")
    return folder


def test_the_broken_folder_covers_at_least_twelve_kinds() -> None:
    assert len(BROKEN) - 1 >= 12  # the two DUP files are one kind


def test_one_validate_run_reports_every_problem_with_file_and_line(
        broken_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "validate", str(broken_dir)]) == 2
    out = capsys.readouterr().out.splitlines()
    problems = [line for line in out[:-1] if ": warning: " not in line]
    for name, (text, message, needle) in BROKEN.items():
        line = _line_of(text, needle)
        where = f"{name}:{line}: " if line else f"{name}: "
        hits = [p for p in problems if where in p and message in p]
        assert len(hits) == 1, (name, where, message, [p for p in problems if name in p])
    assert not any("GOOD.yaml" in p for p in out)
    assert len(problems) == len(BROKEN)  # exactly one problem per broken file
    # STRATUM-VALUE's cases no longer produce an urban cell: a warning, not a problem
    [warning] = [line for line in out if ": warning: " in line]
    assert "STRATUM-VALUE.yaml:12: warning: strata[0]: no test case expects" in warning
    assert out[-1] == f"{len(BROKEN)} problems in {len(BROKEN)} files (1 warning)"


def test_problems_are_sorted_by_file_and_line(broken_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (broken_dir / "TWO-PROBLEMS.yaml").write_text(
        BASE.replace("@ID@", "TWO-PROBLEMS").replace("ca_bystander_cpr: true}", "pat: 1}")
        .replace("numerator: coalesce(ca_bystander_cpr", "numerator: coalesce(ca_bystandr_cpr"),
        encoding="utf-8")
    main(["specs", "validate", str(broken_dir / "TWO-PROBLEMS.yaml")])
    out = capsys.readouterr().out.splitlines()
    assert [re.sub(r"^.*TWO-PROBLEMS\.yaml:(\d+): .*$", r"\1", line) for line in out[:-1]] \
        == ["11", "16"], out
    assert out[-1] == "2 problems in 1 file"


def test_a_stratum_value_no_test_produces_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE.replace("@ID@", "RURAL-ONLY").replace(
        "      - {stratum: {urbanicity: urban}, numerator: 1, denominator: 1}\n", "").replace(
        "urbanicity: urban, ca_bystander_cpr: true", "urbanicity: rural, ca_bystander_cpr: true"
    ).replace("numerator: 0, denominator: 1", "numerator: 1, denominator: 2")
    (tmp_path / "RURAL-ONLY.yaml").write_text(text, encoding="utf-8")
    assert main(["specs", "validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("RURAL-ONLY.yaml:12: warning: strata[0]: no test case expects a "
                           "cell with urbanicity = urban; add rows that produce one")
    assert out[-1] == "1 spec valid (1 warning)"
    assert main(["specs", "validate", "--strict", str(tmp_path)]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "1 problem in 1 file"
    assert main(["specs", "test", "--dir", str(tmp_path)]) == 0  # the case itself passes


def test_the_packaged_catalogue_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "validate"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{len(load_specs())} specs valid")


def test_missing_paths_and_empty_folders_are_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "validate", str(tmp_path), str(tmp_path / "nope.yaml")]) == 2
    out = capsys.readouterr().out
    assert "no *.yaml indicator specs here" in out and "nope.yaml: no such file" in out


@pytest.mark.parametrize("kind", ["share", "distribution", "rate", "ratio"])
def test_new_writes_a_template_that_validates_and_passes_its_test(
        tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "specs"
    assert main(["specs", "new", "NEW-IND", "--dir", str(folder), "--type", kind]) == 0
    path = folder / "NEW-IND.yaml"
    text = path.read_text(encoding="utf-8")
    for field in ("id", "version", "title", "description", "unit", "direction", "type",
                  "population", "strata", "tests"):
        assert f"\n# {field}:" in text, field  # every field is explained
    assert "excluded" in text  # the sample case shows an exclusion
    assert main(["specs", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: title: still holds the template's TODO" in out
    assert out.splitlines()[-1] == "1 spec valid (2 warnings)"  # the TODOs only
    assert main(["specs", "test", "NEW-IND", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 case passed"
    [spec] = load_specs(folder)
    assert spec.type == kind


def test_new_refuses_an_existing_file_and_a_bad_id(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "new", "X1", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "X1.yaml").read_text(encoding="utf-8")
    assert main(["specs", "new", "X1", "--dir", str(tmp_path), "--type", "distribution"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "X1.yaml").read_text(encoding="utf-8") == before
    for bad in ("resp-med", "RESP_MED", "-X", "X-", "../X"):
        assert main(["specs", "new", "--dir", str(tmp_path), "--", bad]) == 2
        assert "is not a valid indicator id" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X1.yaml"]


def test_a_failing_case_shows_a_diff_per_cell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    share = BASE.replace("@ID@", "SHARE-WRONG").replace(
        "numerator: 1, denominator: 1", "numerator: 0, denominator: 2")
    (tmp_path / "SHARE-WRONG.yaml").write_text(share, encoding="utf-8")
    dist = DIST.replace("@ID@", "DIST-WRONG").replace(
        "quantile: 0.5", "quantile: 0.5\nbins: {start: 0, width: 10, count: 10}").replace(
        "- {stratum: {urbanicity: rural}, bins: {}}", "- {stratum: {urbanicity: rural}, "
        "bins: {3: 1}}").replace(
        "- {stratum: {urbanicity: urban}, bins: {}}", "- {stratum: {urbanicity: urban}, "
        "bins: {8: 1}}").replace("urbanicity: urban, ca_bystander_cpr: true",
                                 "urbanicity: urban, patient_age: 85").replace(
        "urbanicity: rural}\n", "urbanicity: rural, patient_age: 200}\n")
    (tmp_path / "DIST-WRONG.yaml").write_text(dist, encoding="utf-8")
    assert main(["specs", "validate", str(tmp_path)]) == 2  # patient_age 200 is out of range
    assert "tests[0].rows[1].patient_age: 200 is outside 0..120" in capsys.readouterr().out
    (tmp_path / "DIST-WRONG.yaml").write_text(dist.replace("patient_age: 200", "patient_age: 101"),
                                              encoding="utf-8")
    assert main(["specs", "test", "--dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 of 2 cases failed"
    assert "FAIL  DIST-WRONG: by area" in out
    assert "      urbanicity=rural: bin 3 [30, 40) expected 1, got 0" in out
    assert "      urbanicity=rural: bin 10 [100, ∞) expected 0, got 1" in out
    assert "      urbanicity=urban: bin 8 [80, 90) expected 1, got 1" not in out
    assert "FAIL  SHARE-WRONG: by area" in out
    assert "      urbanicity=urban: numerator expected 0, got 1" in out
    assert "      urbanicity=urban: denominator expected 2, got 1" in out
    assert not any("urbanicity=rural: n" in line for line in out)  # that cell is right
    assert main(["specs", "test", "SHARE-WRONG", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 1 case failed"


def test_a_missing_or_extra_cell_is_named(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE.replace("@ID@", "CELLS").replace(
        "{stratum: {urbanicity: urban}, numerator: 1, denominator: 1}",
        "{stratum: {urbanicity: unknown}, numerator: 1, denominator: 1}")
    (tmp_path / "CELLS.yaml").write_text(text, encoding="utf-8")
    assert main(["specs", "test", "--dir", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert ("urbanicity=unknown: expected numerator 1, denominator 1; got no cell" in out)
    assert "urbanicity=urban: expected no cell; got numerator 1, denominator 1" in out


def test_test_and_run_refuse_unknown_ids_and_invalid_specs(
        broken_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "test", "NOPE"]) == 2
    assert "unknown indicator id 'NOPE'" in capsys.readouterr().err
    assert main(["specs", "test", "--dir", str(broken_dir)]) == 2
    err = capsys.readouterr().err
    assert "MISSPELT-COLUMN.yaml:10: population" in err
    assert "'emsbench specs validate" in err


def _missions(write: Callable[..., Path], name: str = "m.parquet") -> Path:
    base = {"call_received": "2025-06-01 10:00:00", "urgency_level": "U1",
            "service_type": "emergency", "ca_arrest": True, "ca_resus_attempted": True,
            "ca_witnessed_by": "bystander"}
    rows = [base | {"ca_bystander_cpr": True}, base | {"ca_bystander_cpr": False},
            base | {"ca_bystander_cpr": True}, base | {"ca_arrest": False},
            base | {"call_received": "2025-07-01 10:00:00", "arrived_scene":
                    "2025-07-01 10:07:10", "ca_arrest": False, "urbanicity": "urban"}]
    return write(rows, name)  # type: ignore[no-any-return]


def test_run_computes_one_spec_on_local_data(
        write_missions: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    data = _missions(write_missions)
    assert main(["specs", "run", "BCPR", "--data", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("LOCAL RESULT, NO DISCLOSURE CONTROL")
    assert "Nothing leaves this machine" in out[0]
    assert any("year 2025: 5 rows read, 5 accepted, 0 rejected" in line for line in out)
    assert re.search(r"^\(all\)\s+2\s+3\s+66\.7$", out[-1]), out
    csv = _missions(write_missions, "m.csv")
    assert main(["specs", "run", "RESP-MED", "--data", str(csv), "--year", "2025"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.search(r"^urgency_level=U1, urbanicity=urban\s+1\s+7\.17$", out[-1]), out


def test_run_prints_json(write_missions: Callable[..., Path],
                         capsys: pytest.CaptureFixture[str]) -> None:
    data = _missions(write_missions)
    assert main(["specs", "run", "BCPR", "--data", str(data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["local_only"] is True and doc["disclosure_control"] == "none"
    assert doc["result"]["cells"][0]["numerator"] == 2
    assert doc["result"]["cells"][0]["denominator"] == 3
    assert doc["ingest"]["rows_accepted"] == 5 and doc["year"] == 2025


def test_run_errors_say_what_to_do(write_missions: Callable[..., Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    data = _missions(write_missions)
    assert main(["specs", "run", "BCPR", "--data", str(data), "--format", "nemsis"]) == 2
    # NEMSIS input is a folder of tables: a single file is refused with what to give instead
    assert "NEMSIS input is a folder of tables" in capsys.readouterr().err
    assert main(["specs", "run", "BCPR", "--data", str(tmp_path / "none.parquet")]) == 2
    assert "does not exist" in capsys.readouterr().err
    two_years = write_missions([{"call_received": f"{y}-01-01 10:00:00", "urgency_level": "U1",
                                 "service_type": "emergency"} for y in (2024, 2025)], "two.csv")
    assert main(["specs", "run", "BCPR", "--data", str(two_years)]) == 2
    assert "2024, 2025); give it with --year" in capsys.readouterr().err
    assert main(["specs", "run", "BCPR", "--data", str(two_years), "--year", "2024"]) == 0
    assert "1 accepted, 1 rejected (outside_period 1)" in capsys.readouterr().out


def test_docs_command_writes_the_catalogue(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["specs", "docs", "--out", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "BCPR.html").is_file()
    assert "indicator page" in capsys.readouterr().out


def test_validate_refuses_a_released_version_changed_without_a_bump(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from emsbench.specs import default_spec_dir

    specs = tmp_path / "specs"
    shutil.copytree(default_spec_dir(), specs, ignore=shutil.ignore_patterns("*.py"))
    assert (specs / "releases" / "2026.1.json").is_file()
    bcpr = specs / "BCPR.yaml"
    bcpr.write_text(bcpr.read_text(encoding="utf-8").replace(
        "numerator: coalesce(ca_bystander_cpr, false)",
        "numerator: coalesce(ca_bystander_aed, false)"), encoding="utf-8")
    assert main(["specs", "validate", str(specs)]) == 2
    out = capsys.readouterr().out
    assert "BCPR.yaml: version 1.0.0 was released in 2026.1 with another definition" in out
    bcpr.write_text(bcpr.read_text(encoding="utf-8").replace("version: 1.0.0",
                                                             "version: 1.1.0"),
                    encoding="utf-8")
    assert main(["specs", "validate", str(specs)]) == 0
