"""The Nordic national exports (national-no .. national-is): written from synthetic data by
node.synth.national_writer, read back by node.adapters.national, equal to the common file
column by column; bad national values are counted, never dropped silently."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pytest

from emsbench import model
from node.adapters import adapter
from node.adapters.national_format import FormatError, load_format, names, parse_format
from node.ingest import IngestReport, InputError, open_missions
from node.synth.formats import write_format
from node.synth.generator import generate

YEAR = 2025
ROWS = 20_000
COUNTRIES = ("NO", "SE", "DK", "FI", "IS")


def fmt_of(country: str) -> str:
    return f"national-{country.lower()}"


def missions(path: Path, work: Path, fmt: str, **kw: object
             ) -> tuple[pa.Table, IngestReport]:
    """The validated missions of ``path`` (ordered by id) and the ingest report."""
    work.mkdir(parents=True, exist_ok=True)
    con, report = open_missions(path, YEAR, work, fmt=fmt, **kw)  # type: ignore[arg-type]
    try:
        table = con.sql("SELECT * FROM missions ORDER BY mission_id").to_arrow_table()
    finally:
        con.close()
    return table, report


@pytest.fixture(scope="module", params=COUNTRIES)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[str, pa.Table, IngestReport, pa.Table, IngestReport, Path]:
    """One country: the common file and its national export, both read by the node."""
    country = str(request.param)
    tmp = tmp_path_factory.mktemp(country)
    common = tmp / "common.parquet"
    generate(country, YEAR, common, rows=ROWS, seed=7 + COUNTRIES.index(country))
    national = write_format(common, tmp / f"{country}.csv", fmt_of(country), country)
    base, base_report = missions(common, tmp / "w1", "common")
    ours, our_report = missions(national, tmp / "w2", fmt_of(country))
    return country, base, base_report, ours, our_report, national


def test_every_nordic_format_is_registered() -> None:
    assert names() == tuple(fmt_of(c) for c in sorted(COUNTRIES, key=str.lower))
    for country in COUNTRIES:
        module = adapter(fmt_of(country))
        assert module is not None and module.__name__ == "node.adapters.national"
        assert module.description(fmt_of(country)) == load_format(fmt_of(country)).description


def test_round_trip_equals_the_common_file(pair: tuple[str, pa.Table, IngestReport,
                                                       pa.Table, IngestReport, Path]) -> None:
    country, base, base_report, ours, our_report, _ = pair
    spec = load_format(fmt_of(country))
    assert our_report.rows_read == base_report.rows_read == ROWS
    assert our_report.rows_accepted == base_report.rows_accepted
    assert our_report.rejected_by_reason == base_report.rejected_by_reason
    assert our_report.nulled_by_reason == base_report.nulled_by_reason
    assert our_report.encoding == spec.encoding
    assert base.num_rows == ours.num_rows > ROWS * 0.99
    derived = [*model.DERIVED]
    for col in [*spec.carried(), *derived]:
        assert ours.column(col).equals(base.column(col)), f"{country}: {col} differs"
    # the columns the export does not carry are empty, every row
    assert spec.not_carried(), "every format leaves something out in this test"
    for col in spec.not_carried():
        assert ours.column(col).null_count == ours.num_rows, f"{country}: {col} not NULL"
    assert set(our_report.missing_optional_columns) == set(spec.not_carried())


def test_the_export_is_national(pair: tuple[str, pa.Table, IngestReport,
                                            pa.Table, IngestReport, Path]) -> None:
    country, *_, national = pair
    spec = load_format(fmt_of(country))
    text = national.read_bytes().decode(spec.encoding)
    header = text.split("\n", 1)[0].split(spec.separator)
    assert header == [c.header for c in spec.columns]
    first = next(csv.DictReader(io.StringIO(text), delimiter=spec.separator))
    assert first[spec.columns[0].header].startswith(f"{country}-{YEAR}-")
    # native codes, not common ones
    sex = next(c for c in spec.columns if c.name == "patient_sex").header
    assert set(r[sex] for r in csv.DictReader(io.StringIO(text), delimiter=spec.separator)) \
        <= {"", *spec.crosswalk.canonical("patient_sex").values()}
    if spec.encoding != "utf-8":
        with pytest.raises(UnicodeDecodeError):
            national.read_bytes().decode("utf-8")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """A small Norwegian export and its rows (as text)."""
    tmp = tmp_path_factory.mktemp("small")
    common = tmp / "common.parquet"
    generate("NO", YEAR, common, rows=400, seed=11)
    national = write_format(common, tmp / "NO.csv", "national-no", "NO")
    with national.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    return national, rows


def write_rows(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8",
               rename: dict[str, str] | None = None) -> Path:
    fields = list(rows[0])
    with path.open("w", encoding=encoding, newline="") as fh:
        out = csv.writer(fh, delimiter=";")
        out.writerow([(rename or {}).get(f, f) for f in fields])
        out.writerows([r[f] for f in fields] for r in rows)
    return path


def test_bad_national_values_are_counted(small: tuple[Path, list[dict[str, str]]],
                                         tmp_path: Path) -> None:
    national, rows = small
    _, before = missions(national, tmp_path / "w0", "national-no")
    ok = [i for i, r in enumerate(rows) if r["kjønn"] and r["hastegrad"]
          and r["tid_ankomst_hendelsessted"] and r["alder"] not in ("", "150")]
    rows = [dict(r) for r in rows]
    a, b, c, d, e, f, g = ok[:7]
    rows[a]["hastegrad"] = "Z"                      # no such urgency: row rejected
    rows[b]["kjønn"] = "X"                          # no such sex: value emptied
    rows[c]["tid_varslet"] = "2025-03-01 10:00:00"  # ISO in a Norwegian file: unparseable
    rows[d]["tid_ankomst_hendelsessted"] = "31.02.2025 10:00:00"  # no such date
    rows[e]["tid_mottatt"] = "1/2/2025"             # required time unparseable: rejected
    rows[f]["oppdragstype"] = "pasientreise"        # listed as unmapped: still counted
    rows[g]["blålys"] = "ukjent"                    # unmapped yes/no word: counted
    rows[a]["kjønn"] = "k"                          # case-insensitive: female
    bad = write_rows(tmp_path / "bad.csv", rows)
    rejects = tmp_path / "rejects.csv"
    table, report = missions(bad, tmp_path / "w1", "national-no", rejects=rejects)

    def delta(now: dict[str, int], was: dict[str, int]) -> dict[str, int]:
        return {k: now.get(k, 0) - was.get(k, 0) for k in {*now, *was}
                if now.get(k, 0) != was.get(k, 0)}

    assert delta(report.rejected_by_reason, before.rejected_by_reason) == {
        "invalid_code:urgency_level": 1, "unparseable:call_received": 1,
        "invalid_code:service_type": 1}
    assert delta(report.nulled_by_reason, before.nulled_by_reason) == {
        "invalid_code:patient_sex": 1, "unparseable:unit_notified": 1,
        "unparseable:arrived_scene": 1, "unparseable:lights_sirens": 1}
    assert report.rows_read == before.rows_read == 400
    text = rejects.read_text("utf-8")
    for raw in ("Z", "X", "1/2/2025", "31.02.2025 10:00:00", "pasientreise", "ukjent",
                "2025-03-01 10:00:00 (expected %d.%m.%Y %H:%M:%S)"):
        assert raw in text, raw
    # the line of the rejected urgency is the CSV line (header on line 1)
    line = next(r for r in csv.DictReader(io.StringIO(text)) if r["value"] == "Z")["line"]
    assert int(line) == a + 2
    by_id = {m: i for i, m in enumerate(table.column("mission_id").to_pylist())}
    assert table.column("patient_sex")[by_id[rows[b]["oppdrag_id"]]].as_py() is None
    assert rows[a]["oppdrag_id"] not in by_id


def test_headers_match_like_the_node_and_a_missing_one_is_named(
        small: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    national, rows = small
    base, _ = missions(national, tmp_path / "w0", "national-no")
    renamed = write_rows(tmp_path / "renamed.csv", rows,
                         rename={"kjønn": " KJØNN ", "antatt_årsak": "Antatt Arsak"})
    table, report = missions(renamed, tmp_path / "w1", "national-no")
    assert table.column("patient_sex").equals(base.column("patient_sex"))
    assert table.column("ca_presumed_cause").equals(base.column("ca_presumed_cause"))
    dropped = [{k: v for k, v in r.items() if k != "kjønn"} for r in rows]
    with pytest.raises(InputError, match=r"'kjønn' \(patient_sex\)"):
        missions(write_rows(tmp_path / "no-sex.csv", dropped), tmp_path / "w2", "national-no")


def test_extra_headers_are_ignored_and_reported(small: tuple[Path, list[dict[str, str]]],
                                                tmp_path: Path) -> None:
    _, rows = small
    extra = [{**r, "merknad": "fritekst"} for r in rows]
    _, report = missions(write_rows(tmp_path / "x.csv", extra), tmp_path / "w", "national-no")
    assert report.ignored_columns == ("merknad",)


def test_encoding(small: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    _, rows = small
    latin = write_rows(tmp_path / "latin.csv", rows, encoding="windows-1252")
    with pytest.raises(InputError, match="windows-1252"):  # the format says UTF-8
        missions(latin, tmp_path / "w1", "national-no")
    table, report = missions(latin, tmp_path / "w2", "national-no", encoding="windows-1252")
    assert report.encoding == "windows-1252" and table.num_rows > 390


def test_format_files_are_checked(tmp_path: Path) -> None:
    good = Path(load_format("national-no").file)
    text = (Path(__file__).resolve().parents[3] / "node/adapters/formats" / good).read_text()

    def broken(old: str, new: str) -> str:
        path = tmp_path / "national-no.toml"
        path.write_text(text.replace(old, new, 1), "utf-8")
        with pytest.raises(FormatError) as err:
            parse_format(path)
        return str(err.value)

    assert "not an input column" in broken('mission_id = "oppdrag_id"',
                                           'mission_id = "oppdrag_id"\nage_band = "x"')
    assert "say which crosswalk" in broken(
        'patient_sex = { header = "kjønn", codes = "patient_sex" }', 'patient_sex = "kjønn"')
    assert "requires mission_id" in broken('mission_id = "oppdrag_id"', "")
    assert "loses part of a time" in broken('"%d.%m.%Y %H:%M:%S"', '"%d.%m.%Y %H:%M"')
    assert "also the header" in broken('alder"', 'kommune"')
    assert "unknown encoding" in broken('"utf-8"', '"klingon"')
