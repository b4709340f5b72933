"""``emsbench.spec_docs``: the catalogue as self-contained, escaped static HTML."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from emsbench.spec_docs import chapter, write_docs
from emsbench.specs import default_spec_dir, load_specs


def test_every_spec_has_a_page_linked_from_the_index(tmp_path: Path) -> None:
    specs = load_specs()
    written = write_docs(specs, tmp_path)
    assert written[-1] == tmp_path / "index.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["index.html", *(f"{s.id}.html" for s in specs)])
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    for s in specs:
        assert f'<a href="{s.id}.html">{s.id}</a>' in index
        assert f'<h2 id="chapter-{chapter(s)}">' in index
        page = (tmp_path / f"{s.id}.html").read_text(encoding="utf-8")
        for text in (s.version, s.sha256, s.unit, s.type):
            assert text in page
        assert page.count("<h3>") >= len(s.tests)  # a heading per test case
    resp = (tmp_path / "RESP-P90.html").read_text(encoding="utf-8")
    assert "U1, U2, U3, unknown" in resp and "urban, rural, unknown" in resp  # code sets
    assert "960 bins of width 0.25 from 0" in resp and "[240, ∞)" in resp
    assert "<td>2025-03-01 10:09:40</td>" in resp  # test rows as a table
    assert "bin 38 [9.5, 9.75): 1; bin 39 [9.75, 10): 1" in resp  # expected cells


def test_pages_load_nothing_from_elsewhere(tmp_path: Path) -> None:
    write_docs(load_specs(), tmp_path)
    for page in tmp_path.iterdir():
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html and "<link" not in html and "<iframe" not in html
        assert "url(" not in html and "@import" not in html  # no CSS fetches
        # the only links go to the catalogue's own pages
        for target in re.findall(r'(?:href|src|action|data)\s*=\s*"([^"]*)"', html):
            assert re.fullmatch(r"((index|[A-Z0-9-]+)\.html)?(#chapter-[A-Z0-9-]+)?", target), \
                target


def test_spec_text_is_escaped(tmp_path: Path) -> None:
    body = yaml.safe_load((default_spec_dir() / "BCPR.yaml").read_text(encoding="utf-8"))
    body |= {"id": "EVIL", "title": "<b>bold</b> & co",
             "description": "Innocent <script>alert('x')</script> text",
             "population": body["population"] + " AND 1 < 2"}
    body["tests"][1]["name"] = "<img src=x onerror=alert(1)>"
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "EVIL.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    out = tmp_path / "site"
    write_docs(load_specs(specs_dir), out)
    for page in ("EVIL.html", "index.html"):
        html = (out / page).read_text(encoding="utf-8")
        assert "<script" not in html and "<b>bold" not in html and "<img" not in html
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    page = (out / "EVIL.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "AND 1 &lt; 2" in page


def test_the_output_is_reproducible(tmp_path: Path) -> None:
    specs = load_specs()
    write_docs(specs, tmp_path / "a")
    write_docs(list(reversed(specs)), tmp_path / "b")
    for page in (tmp_path / "a").iterdir():
        assert page.read_bytes() == (tmp_path / "b" / page.name).read_bytes()
