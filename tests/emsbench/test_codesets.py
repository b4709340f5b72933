"""Code sets and crosswalks (emsbench/data/codesets/): the shipped files load and agree with
the model, the shared urgency crosswalk, the indicator specs and the population table; a
broken file is reported with file, line and code."""

from __future__ import annotations

import csv
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from emsbench import codesets, model
from emsbench.crosswalk import codes_for

SPECS = Path(__file__).resolve().parents[2] / "indicator_specs"


def test_shipped_files_are_valid_and_versioned() -> None:
    assert codesets.check_all() == []
    versions = codesets.versions()
    assert {"common.csv", "icd10-groups.csv", "regions.csv"} <= set(versions)
    assert all(versions.values()), versions


def test_common_code_sets_equal_the_model() -> None:
    common = codesets.load_common()
    for name, codes in model.ENUMS.items():
        assert common.codes[name] == codes
    assert common.codes["boolean"] == ("true", "false")


@pytest.mark.parametrize("country", codesets.NORDIC)
def test_nordic_crosswalks(country: str) -> None:
    cw = codesets.load_crosswalk(country)
    assert cw.version
    urgency = cw.mapping("urgency_level")
    for code in codes_for(country):  # the shared urgency crosswalk, exactly
        assert urgency[code.native_code] == code.common_level
    # every code set a national format writes has a native code for each common code
    for codeset in ("patient_sex", "service_type", "urbanicity", "avpu", "ca_witnessed_by",
                    "ca_first_rhythm", "ca_presumed_cause", "ca_survival_endpoint",
                    "destination_type", "stroke_scale_result", "urgency_level"):
        assert set(cw.canonical(codeset)) == set(model.ENUMS[codeset]), codeset
    assert set(cw.canonical("boolean")) == {"true", "false"}
    # unmapped codes always say why
    assert all(r.reason for r in cw.rows if r.common is None)


def test_native_words() -> None:
    assert codesets.load_crosswalk("NO").mapping("patient_sex")["K"] == "female"
    assert codesets.load_crosswalk("FI").mapping("patient_sex")["N"] == "female"
    assert codesets.load_crosswalk("IS").mapping("patient_sex")["KVK"] == "female"
    assert codesets.load_crosswalk("IS").mapping("patient_sex")["KK"] == "male"
    assert codesets.load_crosswalk("FI").mapping("boolean")["kyllä"] == "true"
    assert codesets.load_crosswalk("SE").mapping("boolean")["nej"] == "false"
    assert codesets.load_crosswalk("IS").canonical("boolean") == {"true": "já", "false": "nei"}


def test_icd10_groups_cover_every_prefix_the_specs_test() -> None:
    prefixes = {g.prefix for g in codesets.load_icd10_groups()}
    used: set[str] = set()
    for spec in SPECS.glob("*.yaml"):
        used |= set(re.findall(r"starts_with\(impression_\w+, '([^']+)'\)", spec.read_text()))
    assert used, "no prefixes found in the specs"
    assert used <= prefixes, used - prefixes


def test_regions_are_those_of_the_population_table() -> None:
    text = resources.files("emsbench").joinpath("data/population.csv").read_text("utf-8")
    population = {(r["country"], r["region"]) for r in csv.DictReader(text.splitlines())}
    regions = {(c, r) for c, rs in codesets.load_regions().items() for r in rs}
    assert regions == population


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A writable copy of the shipped code-set files."""
    out = tmp_path / "codesets"
    out.mkdir()
    for path in codesets.folder().glob("*.csv"):
        shutil.copy(path, out / path.name)
    return out


HEAD = ("# version: 9\n# country: NO\n"
        "codeset,native_code,common_code,native_label,unmapped_reason\n")
URGENCY = "urgency_level,A,U1,,\nurgency_level,H,U2,,\nurgency_level,V,U3,,\n"


def problems(folder: Path) -> list[str]:
    return [str(p) for p in codesets.check_all(folder)]


def test_broken_crosswalk_is_reported_with_its_location(folder: Path) -> None:
    (folder / "crosswalk-no.csv").write_text(
        HEAD + URGENCY                        # lines 4-6
        + "patient_sex,K,female,kvinne,\n"   # line 7
        + "patient_sex,k,male,duplicate,\n"  # line 8: same code (case-insensitive)
        + "patient_sex,M,man,unknown common code,\n"  # line 9
        + "patient_sex,X,,neither,\n"        # line 10: no common code and no reason
        + "patient_sex,U,unknown,both,why\n"  # line 11
        + "hair_colour,R,red,,\n", "utf-8")  # line 12
    found = problems(folder)
    assert any(p.startswith("crosswalk-no.csv:8: 'k'") and "duplicate" in p
               and "line 7" in p for p in found), found
    assert any(p.startswith("crosswalk-no.csv:9: 'M'") and "'man'" in p for p in found), found
    assert any(p.startswith("crosswalk-no.csv:10: 'X'") and "nor listed as unmapped" in p
               for p in found), found
    assert any(p.startswith("crosswalk-no.csv:11: 'U'") and "both" in p for p in found)
    assert any(p.startswith("crosswalk-no.csv:12: 'R'") and "unknown code set" in p
               for p in found), found
    with pytest.raises(codesets.CodeSetError) as err:
        codesets.load_crosswalk("NO", folder)
    assert len(err.value.problems) == 5
    assert err.value.problems[0].file == "crosswalk-no.csv"
    assert err.value.problems[0].line == 8


def test_unmapped_code_with_a_reason_is_valid(folder: Path) -> None:
    (folder / "crosswalk-no.csv").write_text(
        HEAD + URGENCY + "patient_sex,9,,not specified,NPR 9 is no value\n", "utf-8")
    cw = codesets.load_crosswalk("NO", folder)
    assert cw.mapping("patient_sex") == {"9": None}
    assert cw.canonical("patient_sex") == {}


def test_urgency_must_agree_with_the_shared_crosswalk(folder: Path) -> None:
    (folder / "crosswalk-no.csv").write_text(
        HEAD + "urgency_level,A,U2,,\nurgency_level,V,U3,,\nurgency_level,R,U1,,\n", "utf-8")
    found = problems(folder)
    assert any(p.startswith("crosswalk-no.csv:4: 'A'") and "shared crosswalk says U1" in p
               for p in found), found
    assert any("'H'" in p and "missing" in p for p in found), found
    assert any(p.startswith("crosswalk-no.csv:6: 'R'") and "not in the shared" in p
               for p in found), found


def test_missing_version_and_bad_header(folder: Path) -> None:
    (folder / "crosswalk-se.csv").write_text("codeset,native,common\n", "utf-8")
    found = problems(folder)
    assert any(p.startswith("crosswalk-se.csv:1:") and "version" in p for p in found), found
    assert any(p.startswith("crosswalk-se.csv:1:") and "header must be" in p for p in found)


def test_common_codes_must_equal_the_model(folder: Path) -> None:
    path = folder / "common.csv"
    lines = path.read_text("utf-8").splitlines()
    lines = [ln for ln in lines if not ln.startswith("patient_sex,unknown")]
    lines.append("patient_sex,other,not in the model")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    found = problems(folder)
    assert any(f"common.csv:{len(lines)}: 'other'" in p for p in found), found
    assert any("'unknown'" in p and "missing from the file" in p for p in found), found


def test_bad_icd10_prefix(folder: Path) -> None:
    path = folder / "icd10-groups.csv"
    path.write_text(path.read_text("utf-8") + "stroke,I6,too short,STROKE-01\n", "utf-8")
    found = problems(folder)
    assert any("icd10-groups.csv" in p and "'I6'" in p for p in found), found
