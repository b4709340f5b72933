"""The annual report over several years: trends, changes beyond chance, findings, the
executive summary, chapters, languages and the synthetic-data banner.

The federation is ``tests/hub/test_report.py``'s fixture over 2023–2025, where Norway's
survival rose by design (30 % a year on the bystander-witnessed stratum) and response times
fell by half a minute a year everywhere.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from test_report import YEAR, _well_formed, fixture_history, fixture_specs  # noqa: E402

from emsbench.figure import Figure  # noqa: E402
from emsbench.specs import load_specs  # noqa: E402
from hub.annual import headline_strata, indicator_views  # noqa: E402
from hub.history import change, last_change  # noqa: E402
from hub.layout import OTHER, layout  # noqa: E402
from hub.messages import LANGUAGES, Messages, catalogue  # noqa: E402
from hub.report import columns_of, render_report, write_report  # noqa: E402
from hub.summary import findings  # noqa: E402

SURV_HEAD = "ca_survival_endpoint=30d;ca_witnessed_by=bystander"


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return fixture_history()


@pytest.fixture(scope="module")
def html(history) -> str:  # type: ignore[no-untyped-def]
    return render_report(history, YEAR, "en", generated_at="2026-02-02 09:00 UTC")


@pytest.fixture(scope="module")
def html_nb(history) -> str:  # type: ignore[no-untyped-def]
    return render_report(history, YEAR, "nb", generated_at="2026-02-02 09:00 UTC")


# -- messages and layout -------------------------------------------------------------------


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, nb = catalogue("en"), catalogue("nb")
    assert set(en) == set(nb), set(en) ^ set(nb)
    for key, text in en.items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", nb[key])), key
    assert LANGUAGES == ("en", "nb")
    with pytest.raises(ValueError, match="unknown language 'sv'"):
        catalogue("sv")


def test_labels_read_as_words_not_field_names() -> None:
    """Finding: group labels read like field names ('urgency level: U1 · urbanicity: rural',
    'missing:urgency level')."""
    m = Messages("en")
    assert m.stratum("urgency_level=U1;urbanicity=rural") == "U1 most urgent, rural area"
    assert m.stratum("") == "All cases"
    assert m.reason("missing:urgency_level") == "urgency level missing"
    assert m.reason("outside_period") == "call outside the reporting year"
    nb = Messages("nb")
    assert nb.stratum("urgency_level=U1;urbanicity=rural") == "U1 akutt, spredtbygd strøk"
    assert nb.reason("missing:urgency_level") == "hastegrad mangler"
    for text in (m.stratum("urgency_level=U2;urbanicity=urban"), m.reason("missing:urbanicity")):
        assert "_" not in text and ":" not in text


def test_every_catalogue_indicator_has_a_chapter() -> None:
    ids = [s.id for s in load_specs()]
    arranged = layout().arrange(ids)
    assert OTHER not in [c for c, _ in arranged], "a spec is in no chapter of hub/layout.toml"
    assert sorted(i for _, chapter in arranged for i in chapter) == sorted(ids)
    assert [c for c, _ in arranged] == ["dispatch", "response", "cardiac_arrest", "stemi",
                                        "stroke"]
    assert set(layout().key_statistics) <= set(ids) and set(layout().urgency_mix) <= set(ids)
    # an unknown indicator is never lost: it goes to the last chapter
    assert layout().arrange(["NEW-1", "RESP-MED"])[-1] == (OTHER, ["NEW-1"])


# -- changes from the year before ----------------------------------------------------------


def _share(year: int, k: int, n: int, version: str = "1.0.0") -> Figure:
    return Figure("X", version, "percent", "NO", year, "", k, n, 100 * k / n, None, None,
                  False, 1)


def test_a_change_in_a_share_uses_newcombes_interval() -> None:
    c = change(_share(2024, 150, 1000), _share(2025, 200, 1000))
    assert c is not None and c.method == "newcombe"
    assert c.diff == pytest.approx(5.0) and c.beyond_chance
    # against a two-proportion z-test: beyond chance at 5 % in both
    p = 2 * sps.norm.sf(abs((0.2 - 0.15) / math.sqrt(0.175 * 0.825 * 2 / 1000)))
    assert p < 0.05
    small = change(_share(2024, 15, 100), _share(2025, 20, 100))
    assert small is not None and not small.beyond_chance and small.low < 0 < small.high


def test_a_change_across_a_new_definition_is_not_computed() -> None:
    assert change(_share(2024, 150, 1000, "1.0.0"), _share(2025, 200, 1000, "2.0.0")) is None
    assert last_change([_share(2025, 200, 1000)], 2025) is None  # no earlier year


def test_a_rate_change_uses_the_poisson_rate_ratio() -> None:
    def rate(year: int, events: int) -> Figure:
        return Figure("R", "1", "per_100k", "NO", year, "", events, 5_000_000,
                      events / 50, None, None, False, 1)

    c = change(rate(2024, 2500), rate(2025, 2700))
    assert c is not None and c.method == "poisson" and c.beyond_chance
    # the exact conditional test agrees: 2700 of 5200 events against p = 0.5
    assert sps.binomtest(2700, 5200, 0.5).pvalue < 0.05
    c2 = change(rate(2024, 2500), rate(2025, 2550))
    assert c2 is not None and not c2.beyond_chance
    assert sps.binomtest(2550, 5050, 0.5).pvalue > 0.05


def test_history_shows_the_designed_trend(history) -> None:  # type: ignore[no-untyped-def]
    assert history.year_numbers == [2023, 2024, YEAR]
    series = history.series("CA-SURV", SURV_HEAD, "NO")
    assert [f.year for f in series] == [2023, 2024, YEAR]
    values = [f.value for f in series]
    assert values == sorted(values)  # Norway's survival rose every year, by design
    c = last_change(series, YEAR)
    assert c is not None and c.before.year == 2024 and c.diff > 0 and c.beyond_chance


# -- the report ----------------------------------------------------------------------------


def test_headline_group_is_the_pooled_largest_and_each_countrys_own_endpoint(
        history) -> None:  # type: ignore[no-untyped-def]
    surv = fixture_specs()[1]
    figures = [f for f in history.year(YEAR).figures if f.indicator_id == surv.id]
    heads = headline_strata(surv, figures)
    assert heads["NORDIC"] == heads["NO"] == SURV_HEAD
    assert heads["US"] == "ca_survival_endpoint=discharge;ca_witnessed_by=bystander"


def test_every_indicator_shows_its_trend_over_every_year(html: str) -> None:
    _well_formed(html)
    for spec in fixture_specs():
        section = html.split(f'id="{spec.id}"')[1].split("</section>")[0]
        trend = section.split('<table class="trend">')[1].split("</table>")[0]
        assert re.findall(r'<th scope="col">(\d{4})</th>', trend) == ["2023", "2024", "2025"]
        assert "Change from 2024" in trend
        assert len(re.findall(r"<tr", trend)) == 1 + 7  # header, six countries and the pool
        svg = section.split('<table class="trend">')[0].split("<svg")[-1]
        for year in ("2023", "2024", "2025"):
            assert f">{year}</text>" in svg  # the trend chart's axis names each year


def test_a_change_beyond_chance_is_marked_and_one_within_chance_is_not(html: str) -> None:
    surv = html.split('id="CA-SURV"')[1].split("</section>")[0]
    trend = surv.split('<table class="trend">')[1].split("</table>")[0]
    norway = trend.split('<th scope="row">Norway')[1].split("</tr>")[0]
    assert '<span class="beyond">beyond chance</span>' in norway
    assert re.search(r"\+\d+\.\d \(\d+\.\d – \d+\.\d\)", norway)  # change with its interval
    sweden = trend.split('<th scope="row">Sweden')[1].split("</tr>")[0]
    assert '<span class="within">within chance</span>' in sweden


def test_key_findings_name_the_designed_change_with_its_direction(
        history, html: str) -> None:  # type: ignore[no-untyped-def]
    m = Messages("en")
    views = indicator_views(history, YEAR, m, columns_of(history.year(YEAR).figures))
    found = findings(views, m, YEAR, 5)
    assert found and len({f.view.spec.id for f in found}) == len(found)  # one per indicator
    keys = [(f.good is None, -f.z) for f in found]
    assert keys == sorted(keys)  # better or worse first, then by standard errors
    norway = [f for f in found if f.country == "NO" and f.view.spec.id == "CA-SURV"]
    assert norway and norway[0].good is True and "improved from" in norway[0].text
    summary = html.split('id="summary"')[1].split("</section>")[0]
    assert "Norway (alive at 30 days): Survival after out-of-hospital cardiac arrest" in summary
    assert '<span class="good">▲</span>' in summary
    assert "How to read this report" in summary


def test_chapters_contents_and_method_appendix(html: str) -> None:
    toc = html.split('<nav class="toc"')[1].split("</nav>")[0]
    for anchor in ("#summary", "#ch-other", "#countries", "#method"):
        assert f'href="{anchor}"' in toc
    method = html.split('id="method"')[1]
    for heading in ("Indicator definitions", "Quantiles", "Confidence intervals",
                    "Urgency crosswalk", "Provenance"):
        assert heading in method
    crosswalk = method.split('<table class="crosswalk">')[1].split("</table>")[0]
    assert "Norsk indeks for medisinsk nødhjelp" in crosswalk and "MPDS" in crosswalk
    # provenance of every year shown, newest first
    years = re.findall(r"<tr><td>(\d{4})</td>", method.split('id="h-provenance"')[1])
    assert years == ["2025"] * 6 + ["2024"] * 6 + ["2023"] * 6


def test_synthetic_data_carry_a_banner_and_real_data_do_not(html: str) -> None:
    banner = 'class="banner" role="note">SYNTHETIC DATA'
    assert html.count(banner) == 1 and "synthetic (made-up) data" in html
    real = render_report(fixture_history(synthetic=False), YEAR, "en")
    assert banner not in real and "synthetic (made-up) data" not in real


def test_norwegian_report_has_no_english_fixed_text(html: str, html_nb: str) -> None:
    _well_formed(html_nb)
    assert '<html lang="nb">' in html_nb
    assert "Sammendrag" in html_nb and "Metodevedlegg" in html_nb and "Hovedfunn" in html_nb
    assert "Norge (i live etter 30 dager)" in html_nb
    en = catalogue("en")
    english_only = [t for k, t in en.items() if len(t) > 12 and t != catalogue("nb")[k]
                    and "{" not in t]
    leaked = [t for t in english_only if t.replace("'", "&#39;") in html_nb]
    assert leaked == []
    # the same figures in both languages, with a decimal comma in Norwegian
    nums = re.compile(r'<span class="v">([^<]+)<')
    en_values, nb_values = nums.findall(html), nums.findall(html_nb)
    assert any("," in v for v in nb_values) and not any("." in v for v in nb_values)
    assert [v.replace(",", ".") for v in nb_values] == en_values
    assert Messages("nb").number(-1.25, 2) == "−1,25"
    assert Messages("en").number(3, 1, signed=True) == "+3.0"


def test_one_year_alone_says_there_is_no_trend_yet(tmp_path: Path) -> None:
    only = fixture_history(years=(YEAR,))
    files = write_report(only, YEAR, tmp_path)
    text = files.html.read_text(encoding="utf-8")
    assert "Only one year is held, so there is no trend yet." in text
    assert '<table class="trend">' not in text and files.pdf is None


def test_a_year_not_held_is_a_clear_error(history) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no published figures for 2019; years held: "
                                         "2023, 2024, 2025"):
        render_report(history, 2019)


def test_report_of_an_earlier_year_shows_no_later_year(history) -> None:  # type: ignore[no-untyped-def]
    text = render_report(history, 2024)
    assert "benchmark 2024</h1>" in text
    assert set(re.findall(r'<th scope="col">(\d{4})</th>', text)) == {"2023", "2024"}
    assert set(re.findall(r"<tr><td>(\d{4})</td>", text)) == {"2023", "2024"}
    assert "-2025-" not in text
