"""The HTML report: content, suppression markers, survival endpoints, provenance, markup.

The report is built from a ``hub.ledger.PeriodView``: the standing revision per country
(a store ``Record`` with its signed document) and the revisions set aside. The views here
are built directly from records, without a store or a trust registry.

``render_preview(out_dir)`` renders the same fixture for a human to look at:
``python -c "import sys; sys.path.insert(0, 'tests/hub'); import test_report as t;
t.render_preview('/tmp/report-preview')"``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from emsbench import __version__, dsse
from emsbench.kinds.distribution import coarsen
from emsbench.kinds.share import protect_pair
from emsbench.specs import Bins, ExpectedCell, IndicatorSpec, SpecTestCase, catalogue_sha256
from emsbench.wire import (
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    Cell,
    DataQuality,
    DataSource,
    IndicatorResult,
    Period,
    Submission,
    Withdrawal,
)
from hub.catalogues import Catalogues
from hub.export import COLUMNS
from hub.history import History, Year, history_of
from hub.ledger import Note, PeriodView, Standing
from hub.merge import Figure, merge
from hub.report import build_report, export_csv, provenance, render_report
from hub.store import Record

YEAR = 2025
NORDIC = ("NO", "SE", "DK", "FI", "IS")
COUNTRIES = (*NORDIC, "US")
RECEIVED = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
_CASE = SpecTestCase(name="t", rows=[], expect=[ExpectedCell()])


def _spec(**kw: object) -> IndicatorSpec:
    base: dict[str, object] = dict(version="1.0.0", population="true", tests=[_CASE])
    return IndicatorSpec.model_validate(base | kw)


def fixture_specs() -> list[IndicatorSpec]:
    return [
        _spec(id="RT-MEDIAN", title="Response time to life-threatening calls",
              description="Median minutes from call answered to first ambulance on scene, "
                          "for the most urgent calls.", unit="minutes",
              direction="lower_is_better", type="distribution", measure="1",
              bins=Bins(start=0, width=1, count=60), quantile=0.5, strata=["urbanicity"]),
        _spec(id="CA-SURV", title="Survival after out-of-hospital cardiac arrest",
              description="Share of patients with cardiac arrest treated by EMS who survive.",
              unit="percent", direction="higher_is_better", type="share", numerator="true",
              strata=["ca_survival_endpoint", "ca_witnessed_by"]),
    ]


def _result(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type=spec.type, strata=list(spec.strata), cells=cells)


def _share(num: int, den: int, threshold: int = 5, **stratum: str) -> Cell:
    # Disclosure control as a node applies it: a small count hides the whole pair.
    return protect_pair(Cell(stratum=stratum, numerator=num, denominator=den), threshold)


def _times(rng: np.random.Generator, n: int, median: float, threshold: int = 5) -> Cell:
    counts = np.bincount(np.minimum(rng.lognormal(np.log(median), 0.45, n).astype(int), 60),
                         minlength=61).tolist()
    runs = coarsen([(i, i, c) for i, c in enumerate(counts) if c], threshold)
    return Cell(bins=runs, suppressed=runs is None)


def fixture_submissions(specs: list[IndicatorSpec], year: int = YEAR,
                        source: DataSource | None = None) -> list[Submission]:
    """Six countries' submissions of ``year``. Earlier years differ by design: Norway's
    survival was lower (a change beyond chance into 2025) and response times were longer
    by half a minute a year everywhere."""
    rt, surv = specs
    rng = np.random.default_rng(year)
    back = YEAR - year
    size = {"NO": 1.0, "SE": 2.0, "DK": 1.2, "FI": 1.1, "IS": 0.08, "US": 6.0}
    survival = {"NO": 1.0, "SE": 0.9, "DK": 1.15, "FI": 0.85, "IS": 1.0, "US": 0.7}
    # Sweden's standing figures are a correction (revision 2).
    revision = {"SE": 2}
    subs = []
    for country, k in size.items():
        endpoint = "discharge" if country == "US" else "30d"
        rt_cells = [_times(rng, int(4000 * k), 9.0 + i * 5 + (country == "US") + 0.5 * back)
                    .model_copy(update={"stratum": {"urbanicity": area}})
                    for i, area in enumerate(["urban", "rural"])]
        trend = 1 - 0.3 * back if country == "NO" else 1.0
        surv_cells = [_share(int(600 * k * p * survival[country] * trend),
                             int(600 * k * share_w),
                             ca_survival_endpoint=endpoint, ca_witnessed_by=w)
                      for w, p, share_w in [("bystander", 0.16, 0.6),
                                            ("unwitnessed", 0.05, 0.4)]]
        rev = revision.get(country, 1)
        subs.append(Submission(
            submission_id=f"{country}-{year}-{rev:02d}", country=country,
            period=Period(year=year), catalogue=catalogue_sha256(specs), revision=rev,
            created_at=datetime(2026, 2, 1, tzinfo=UTC), software_version="0.1.0",
            model_version="1", disclosure_threshold=5,
            data_quality=DataQuality(rows_read=int(50000 * k), rows_accepted=int(49000 * k),
                                     rejected_by_reason={"missing_call_time": int(700 * k),
                                                         "negative_interval": int(300 * k)}),
            indicators=[_result(rt, rt_cells), _result(surv, surv_cells)], source=source))
    return subs


@cache
def _key(country: str) -> dsse.KeyPair:
    return dsse.generate_key()


def record(doc: Submission | Withdrawal, received_at: datetime = RECEIVED) -> Record:
    """The store record of ``doc`` as intake would have written it."""
    payload = doc.to_bytes()
    withdrawal = isinstance(doc, Withdrawal)
    key = _key(doc.country)
    envelope = dsse.sign(payload, key,
                         payload_type=WITHDRAWAL_TYPE if withdrawal else SUBMISSION_TYPE)
    return Record(submission_id=doc.submission_id,
                  kind="withdrawal" if withdrawal else "submission", country=doc.country,
                  year=doc.period.year, catalogue=doc.catalogue, revision=doc.revision,
                  payload_sha256=hashlib.sha256(payload).hexdigest(), keyid=key.keyid,
                  received_at=received_at, envelope=json.dumps(envelope), response={})


def standing(doc: Submission | Withdrawal, received_at: datetime = RECEIVED) -> Standing:
    return Standing(record(doc, received_at), doc)


# Denmark's revision 2 failed the re-check, so its revision 1 stands.
SET_ASIDE = [Note("DK", YEAR, f"DK-{YEAR}-02", 2, "signature_invalid: the stored envelope "
                  "does not verify")]


def fixture_view(specs: list[IndicatorSpec] | None = None) -> PeriodView:
    subs = fixture_submissions(specs or fixture_specs())
    return PeriodView(YEAR, standing=[standing(s) for s in subs], set_aside=list(SET_ASIDE))


SYNTHETIC = DataSource(format="national-no", description="made-up test records",
                       synthetic=True)


def fixture_history(years: tuple[int, ...] = (2023, 2024, YEAR), synthetic: bool = True
                    ) -> History:
    """Three years of the fixture federation (the last is ``fixture_view``'s year)."""
    specs = fixture_specs()
    views = [PeriodView(y, standing=[standing(s) for s in fixture_submissions(
        specs, y, SYNTHETIC if synthetic else None)]) for y in years]
    return history_of(views, Catalogues.of(specs))


def render_preview(out_dir: Path | str) -> Path:
    return build_report(fixture_view(), Catalogues.of(fixture_specs()), out_dir)


class _Checker(HTMLParser):
    """Counts elements and checks that every opened non-void element is closed in order."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def report_of(figures: list[Figure], specs: list[IndicatorSpec]) -> str:
    """The report of bare figures (no signed submission behind them)."""
    return render_report(History(Catalogues.of(specs), [Year(PeriodView(YEAR), figures)]),
                         YEAR, generated_at="2026-02-02 09:00 UTC")


def _well_formed(html: str) -> _Checker:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    return checker


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = render_preview(tmp_path_factory.mktemp("report"))
    assert path.name == "index.html"
    return path.read_text(encoding="utf-8")


def _provenance_section(html: str) -> str:
    return html.split('id="h-provenance"')[1].split("</section>")[0]


def test_page_has_title_countries_and_indicators(html: str) -> None:
    assert f"Nordic–US prehospital EMS benchmark {YEAR}</h1>" in html
    for name in ("Norway", "Sweden", "Denmark", "Finland", "Iceland", "United States"):
        assert f'<th scope="col">{name}</th>' in html
    assert '<th scope="col" class="nordic">Nordic pooled</th>' in html
    for spec in fixture_specs():
        assert spec.title in html and spec.id in html


def test_markup_is_well_formed_with_accessible_tables(html: str) -> None:
    checker = _well_formed(html)
    # every table says what it holds: key statistics, two indicators, rejected rows of six
    # countries, definitions, urgency crosswalk, provenance
    assert checker.tags["table"] == checker.tags["caption"] == 12
    assert 'scope="col"' in html and 'scope="row"' in html
    # self-contained: no scripts, stylesheets or images fetched from elsewhere
    assert "<script" not in html and "<link" not in html and "src=" not in html


def test_every_indicator_has_a_comparison_chart(html: str) -> None:
    sections = html.split('<section class="indicator"')[1:]
    assert len(sections) == len(fixture_specs())
    for spec, section in zip(fixture_specs(), sections, strict=True):
        assert spec.id in section and section.count('<svg') >= 1
        assert f"{spec.title}, {YEAR}" in section.split("<svg")[1]  # the chart's own title


def test_iceland_is_suppressed_with_legend(html: str) -> None:
    # Iceland's survival counts (600 × 0.08 × 0.05 ≈ 2 survivors) are below the threshold.
    assert "suppressed*" in html
    assert "fewer cases than the disclosure threshold" in html
    assert "disclosure threshold (5 cases)" in html


def test_survival_endpoints_are_shown_as_submitted(html: str) -> None:
    surv = html.split('id="CA-SURV"')[1]
    assert ("NO, SE, DK, FI, IS: <em>alive at 30 days</em>; "
            "US: <em>alive at hospital discharge</em>.") in surv
    # rows are grouped by the other strata only, so there are two: bystander / unwitnessed
    table = surv.split("<tbody>")[1].split("</tbody>")[0]
    assert table.count("<tr>") == 2
    assert "witnessed by: bystander" in table and "witnessed by: unwitnessed" in table
    assert "survival endpoint" not in table and "ca_" not in table


def test_text_from_specs_is_escaped(tmp_path: Path) -> None:
    spec = fixture_specs()[1].model_copy(update={"title": "Survival <b>bold</b> & more"})
    subs = fixture_submissions([fixture_specs()[0], spec])[:1]
    text = report_of(merge(subs, [spec], YEAR), [spec])
    assert "<b>bold</b>" not in text and "Survival &lt;b&gt;bold&lt;/b&gt; &amp; more" in text


def test_each_country_says_what_its_figures_rest_on(html: str) -> None:
    norway = html.split('id="h-country-NO"')[1].split("</section>")[0]
    assert "<dt>Rows read</dt><dd>50\u202f000</dd>" in norway
    assert "<dt>Rows accepted</dt><dd>49\u202f000 (98.0 %)</dd>" in norway
    assert '<th scope="row">missing call time</th>' in norway  # reason in words
    assert "<dt>Disclosure threshold</dt><dd>5</dd>" in norway
    assert 'id="h-country-NORDIC"' not in html


def test_provenance_names_each_standing_document_and_revision(html: str) -> None:
    section = _provenance_section(html)
    view = fixture_view()
    for s in view.standing:
        country, rev = s.record.country, s.record.revision
        assert (f"<code>{country}-{YEAR}-{rev:02d}</code></td><td class=\"num\">{rev}</td>"
                f"<td><code class=\"hash\">{s.record.payload_sha256}</code></td>"
                f"<td><code class=\"hash\">{s.record.keyid}</code></td><td>unreleased</td>"
                f"<td>2026-02-01 10:00 UTC</td><td>published</td>") in section
    # one row per standing document and per note, in the benchmark's country order
    rows = re.findall(r'<tr><td>2025</td><th scope="row">[^<]*\((\w+)\)</th>', section)
    assert rows == ["NO", "SE", "DK", "DK", "FI", "IS", "US"]


def test_provenance_names_every_revision_set_aside(html: str) -> None:
    section = _provenance_section(html)
    assert section.count("<strong>Set aside:</strong>") == 1
    dk = section.split(f"<code>DK-{YEAR}-02</code>")[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in dk
    assert ("<strong>Set aside:</strong> signature_invalid: the stored envelope does not "
            "verify") in dk


def test_footer_names_time_software_and_spec_versions(html: str) -> None:
    footer = html.split("<footer>")[1]
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", footer)
    assert f"emsbench {__version__}" in footer
    definitions = html.split('<table class="definitions">')[1].split("</table>")[0]
    for spec in fixture_specs():
        assert (f"<span class=\"id\">{spec.id}</span> <span class=\"n\">version {spec.version}"
                "</span>") in definitions


def test_provenance_rows() -> None:
    view = fixture_view()
    rows = provenance(view, Catalogues.of(fixture_specs(), name="2026.1"))
    assert [r["country"] for r in rows] == ["NO", "SE", "DK", "DK", "FI", "IS", "US"]
    se = rows[1]
    assert se == {"country": "SE", "year": str(YEAR), "what": "submission",
                  "submission_id": f"SE-{YEAR}-02", "revision": "2",
                  "received_at": "2026-02-01 10:00 UTC",
                  "payload_sha256": view.standing[1].record.payload_sha256,
                  "keyid": view.standing[1].record.keyid, "release": "2026.1",
                  "note": "published"}
    dk_note = rows[3]
    assert (dk_note["what"], dk_note["submission_id"], dk_note["revision"]) == (
        "set aside", f"DK-{YEAR}-02", "2")
    assert (dk_note["received_at"], dk_note["payload_sha256"]) == ("", "")


def test_a_withdrawn_country_is_not_published(tmp_path: Path) -> None:
    specs = fixture_specs()
    no, se = fixture_submissions(specs)[:2]
    withdrawal = Withdrawal(submission_id=f"SE-{YEAR}-03", country="SE",
                            period=Period(year=YEAR), catalogue=catalogue_sha256(specs),
                            revision=3, created_at=datetime(2026, 2, 3, tzinfo=UTC),
                            reason="figures recalled for review")
    view = PeriodView(YEAR, standing=[standing(no), standing(withdrawal)])
    text = build_report(view, Catalogues.of(specs), tmp_path).read_text(encoding="utf-8")
    _well_formed(text)
    section = _provenance_section(text)
    assert f"<code>SE-{YEAR}-03</code></td><td class=\"num\">3</td>" in section
    assert "withdrawn: figures recalled for review" in section
    # Sweden has no country section and "not submitted" figures
    assert 'id="h-country-NO"' in text and 'id="h-country-SE"' not in text
    assert "not submitted" in text
    csv_path = export_csv(view, Catalogues.of(specs), tmp_path / "figures.csv")
    with csv_path.open(encoding="utf-8", newline="") as fh:
        countries = {r["country"] for r in csv.DictReader(fh)}
    assert countries == {"NO", "NORDIC"}
    assert se.submission_id not in text


def test_a_year_with_only_set_aside_revisions_still_reports_why(tmp_path: Path) -> None:
    specs = fixture_specs()
    view = PeriodView(YEAR, set_aside=[
        Note("NO", YEAR, f"NO-{YEAR}-01", 1, "key_revoked: <script>alert(1)</script>"),
        # what the ledger notes when a country sent only with another catalogue release
        Note("SE", YEAR, "", 0, "1 revision(s) computed with another indicator catalogue "
             "release; the country must submit with the current catalogue")])
    text = build_report(view, Catalogues.of(specs), tmp_path).read_text(encoding="utf-8")
    _well_formed(text)
    section = _provenance_section(text)
    assert "<strong>Set aside:</strong> key_revoked: &lt;script&gt;" in section
    # a note without a document id or revision shows dashes, not empty cells
    se = section.split("Sweden (SE)")[1].split("</tr>")[0]
    assert ('<td><code>–</code></td><td class="num">–</td><td><code class="hash">–</code></td>'
            '<td><code class="hash">–</code></td><td>–</td><td>–</td>') in se
    assert "another indicator catalogue release" in se
    assert "<script" not in text
    assert "No country submitted this indicator for 2025." in text
    path = export_csv(view, Catalogues.of(specs), tmp_path / "figures.csv")
    assert path.read_text(encoding="utf-8") == ",".join(COLUMNS) + "\n"


def test_export_csv_writes_the_merged_figures_of_the_view(tmp_path: Path) -> None:
    specs, view = fixture_specs(), fixture_view()
    path = export_csv(view, Catalogues.of(specs), tmp_path / "out" / "figures.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    figures = merge(view.submissions, specs, YEAR)
    assert len(rows) == len(figures)
    assert {r["country"] for r in rows} == {*COUNTRIES, "NORDIC"}
    assert {r["indicator_id"] for r in rows} == {"RT-MEDIAN", "CA-SURV"}


def test_figures_without_signed_documents_have_an_empty_provenance(tmp_path: Path) -> None:
    specs = fixture_specs()
    subs = fixture_submissions(specs)
    text = report_of(merge(subs, specs, YEAR), specs)
    _well_formed(text)
    assert "<tbody>\n</tbody>" in _provenance_section(text) and "Set aside:" not in text
    assert f"Generated 2026-02-02 09:00 UTC by emsbench {__version__}." in text


def test_glue_refuses_an_empty_year(tmp_path: Path) -> None:
    specs = fixture_specs()
    with pytest.raises(ValueError, match="no accepted submissions for 2025: run the nodes"):
        build_report(PeriodView(YEAR), Catalogues.of(specs), tmp_path)
    with pytest.raises(ValueError, match="no accepted submissions for 2025"):
        export_csv(PeriodView(YEAR), Catalogues.of(specs), tmp_path / "x.csv")
    assert not (tmp_path / "index.html").exists() and not (tmp_path / "x.csv").exists()


def test_provenance_shows_received_time_in_utc() -> None:
    no = fixture_submissions(fixture_specs())[0]
    oslo = timezone(timedelta(hours=1))
    view = PeriodView(YEAR, standing=[standing(no, datetime(2026, 2, 1, 11, 0, tzinfo=oslo))])
    [row] = provenance(view, Catalogues.of(fixture_specs()))
    assert row["received_at"] == "2026-02-01 10:00 UTC"


def test_strata_no_country_has_a_case_in_are_left_out_of_the_report(tmp_path: Path) -> None:
    """Nodes send the full grid; a row of empty cells is noise in the report, not in the
    export."""
    spec = fixture_specs()[1]
    def fig(country: str, stratum: str, n: int) -> Figure:
        return Figure(spec.id, spec.version, spec.unit, country, YEAR, stratum, n // 2, n,
                      50.0 if n else None, None, None, False, int(n > 0))
    shown = "ca_survival_endpoint=30d;ca_witnessed_by=bystander"
    empty = "ca_survival_endpoint=unknown;ca_witnessed_by=unknown"
    figures = [fig(c, s, n) for c in ("NO", "SE") for s, n in ((shown, 40), (empty, 0))]
    text = report_of(figures, [spec])
    assert "witnessed by: bystander" in text
    assert "witnessed by: not recorded" not in text


def test_the_quantile_definition_is_stated(html: str) -> None:
    section = html.split('id="RT-MEDIAN"')[1].split("</section>")[0]
    assert "Quantile definition: Hyndman–Fan type 7" in section
    assert "Quantile definition" not in html.split('id="CA-SURV"')[1].split("</section>")[0]


def test_nordic_countries_are_compared_with_the_rest_of_the_pool(html: str) -> None:
    section = html.split('id="CA-SURV"')[1].split("</section>")[0]
    assert re.search(r"[+-]\d+\.\d vs rest of Nordic \(-?\d+\.\d – -?\d+\.\d\)", section)
    assert "vs rest: a Nordic country&#39;s share minus" in section


def test_a_rate_says_events_and_inhabitants_not_cases(tmp_path: Path) -> None:
    """Finding: a rate's n was its population, shown as the number of cases."""
    from emsbench.specs import load_specs

    [spec] = load_specs(only=["OHCA-INC"])
    figure = Figure(spec.id, spec.version, spec.unit, "NO", YEAR, "", 280, 550_000,
                    50.9, 45.1, 57.2, False, 1, ("NO",))
    text = report_of([figure], [spec])
    section = text.split('id="OHCA-INC"')[1].split("</section>")[0]
    assert "280 events · 550\u202f000 inhabitants" in section
    assert "n = 550" not in section
