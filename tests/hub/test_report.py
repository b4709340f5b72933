"""The HTML report: content, suppression markers, survival endpoints, well-formed markup.

``render_preview(out_dir)`` renders the same fixture for a human to look at:
``python -c "import sys; sys.path.insert(0, 'tests/hub'); import test_report as t;
t.render_preview('/tmp/report-preview')"``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from emsbench.specs import Bins, ExpectedCell, IndicatorSpec, SpecTestCase
from emsbench.wire import Cell, DataQuality, IndicatorResult, Period, Submission
from hub.merge import data_quality_rows, merge
from hub.report import build_report, export_csv, write_report
from node.disclosure import coarsen

YEAR = 2025
NORDIC = ("NO", "SE", "DK", "FI", "IS")
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
              bins=Bins(start=0, width=1, count=60), quantile=0.5, strata=["area"]),
        _spec(id="CA-SURV", title="Survival after out-of-hospital cardiac arrest",
              description="Share of patients with cardiac arrest treated by EMS who survive.",
              unit="percent", direction="higher_is_better", type="share", numerator="true",
              strata=["ca_survival_endpoint", "witnessed"]),
    ]


def _result(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type=spec.type, strata=list(spec.strata), cells=cells)


def _share(num: int, den: int, threshold: int = 5, **stratum: str) -> Cell:
    # Disclosure control as a node applies it: a small count hides the whole pair.
    if num < threshold or den - num < threshold:
        return Cell(stratum=stratum, suppressed=True)
    return Cell(stratum=stratum, numerator=num, denominator=den)


def _times(rng: np.random.Generator, n: int, median: float, threshold: int = 5) -> Cell:
    counts = np.bincount(np.minimum(rng.lognormal(np.log(median), 0.45, n).astype(int), 60),
                         minlength=61).tolist()
    runs = coarsen([(i, i, c) for i, c in enumerate(counts) if c], threshold)
    return Cell(bins=runs, suppressed=runs is None)


def fixture_submissions(specs: list[IndicatorSpec]) -> list[Submission]:
    rt, surv = specs
    rng = np.random.default_rng(2025)
    size = {"NO": 1.0, "SE": 2.0, "DK": 1.2, "FI": 1.1, "IS": 0.08, "US": 6.0}
    survival = {"NO": 1.0, "SE": 0.9, "DK": 1.15, "FI": 0.85, "IS": 1.0, "US": 0.7}
    subs = []
    for country, k in size.items():
        endpoint = "discharge" if country == "US" else "30_day"
        rt_cells = [_times(rng, int(4000 * k), 9.0 + i * 5 + (country == "US"))
                    .model_copy(update={"stratum": {"area": area}})
                    for i, area in enumerate(["urban", "rural"])]
        surv_cells = [_share(int(600 * k * p * survival[country]), int(600 * k * share_w),
                             ca_survival_endpoint=endpoint, witnessed=w)
                      for w, p, share_w in [("yes", 0.16, 0.6), ("no", 0.05, 0.4)]]
        subs.append(Submission(
            submission_id=f"{country}-{YEAR}-01", country=country, period=Period(year=YEAR),
            created_at=datetime(2026, 2, 1, tzinfo=UTC), software_version="0.1.0",
            model_version="1", disclosure_threshold=5,
            data_quality=DataQuality(rows_read=int(50000 * k), rows_accepted=int(49000 * k),
                                     rejected_by_reason={"missing_call_time": int(700 * k),
                                                         "negative_interval": int(300 * k)}),
            indicators=[_result(rt, rt_cells), _result(surv, surv_cells)]))
    return subs


def render_preview(out_dir: Path | str) -> Path:
    specs = fixture_specs()
    subs = fixture_submissions(specs)
    meta = {"generated_at": "2026-02-02 09:00 UTC", "software_version": "0.1.0"}
    return write_report(merge(subs, specs, YEAR), specs, data_quality_rows(subs), YEAR,
                        out_dir, meta)


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


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = render_preview(tmp_path_factory.mktemp("report"))
    assert path.name == "index.html"
    return path.read_text(encoding="utf-8")


def test_page_has_title_countries_and_indicators(html: str) -> None:
    assert f"Nordic–US prehospital EMS benchmark {YEAR}</h1>" in html
    for code in (*NORDIC, "US"):
        assert f"({code})</th>" in html
    assert "Nordic pooled" in html
    for spec in fixture_specs():
        assert spec.title in html and spec.id in html


def test_markup_is_well_formed_with_accessible_tables(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert checker.tags["table"] == 3 and checker.tags["caption"] == 3
    assert 'scope="col"' in html and 'scope="row"' in html
    # self-contained: no scripts, stylesheets or images fetched from elsewhere
    assert "<script" not in html and "<link" not in html and "src=" not in html


def test_one_svg_chart_per_indicator(html: str) -> None:
    sections = html.split('<section class="indicator"')[1:]
    for spec, section in zip(fixture_specs(), sections, strict=False):
        assert spec.id in section and section.count("<svg") == 1
        assert section.count("<circle") > 0


def test_iceland_is_suppressed_with_legend(html: str) -> None:
    # Iceland's survival counts (600 × 0.08 × 0.05 ≈ 2 survivors) are below the threshold.
    assert "suppressed*" in html
    assert "fewer than the disclosure threshold" in html
    assert "threshold (5 cases)" in html


def test_survival_endpoints_are_shown_as_submitted(html: str) -> None:
    surv = html.split('id="CA-SURV"')[1]
    assert "30 day" in surv and "discharge" in surv
    assert "NO, SE, DK, FI, IS: <em>30 day</em>" in surv and "US: <em>discharge</em>" in surv
    # rows are grouped by the other strata only, so there are two: witnessed yes / no
    table = surv.split("<tbody>")[1].split("</tbody>")[0]
    assert table.count("<tr>") == 2
    assert "ca survival endpoint" not in table


def test_text_from_specs_is_escaped(tmp_path: Path) -> None:
    spec = fixture_specs()[1].model_copy(update={"title": "Survival <b>bold</b> & more"})
    subs = fixture_submissions([fixture_specs()[0], spec])[:1]
    out = write_report(merge(subs, [spec], YEAR), [spec], [], YEAR, tmp_path, {})
    text = out.read_text(encoding="utf-8")
    assert "<b>bold</b>" not in text and "Survival &lt;b&gt;bold&lt;/b&gt; &amp; more" in text


def test_data_quality_table(html: str) -> None:
    quality = html.split('id="h-quality"')[1]
    assert "Rejected: missing call time" in quality
    assert re.search(r"<td class=\"num\">50\u202f000</td>", quality)  # Norway, rows read


class _Store:
    def __init__(self, subs: list[Submission]) -> None:
        self.subs = subs

    def latest_submissions(self, year: int) -> list[Submission]:
        return [s for s in self.subs if s.period.year == year]


def test_glue_refuses_an_empty_year(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no accepted submissions for 2025: run the nodes"):
        build_report(_Store([]), YEAR, tmp_path)
    with pytest.raises(ValueError, match="no accepted submissions for 2025"):
        export_csv(_Store([]), YEAR, tmp_path / "x.csv")
