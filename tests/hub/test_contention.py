"""Report and export keep working while the hub is taking submissions.

A real ``emsbench hub serve`` process holds the DuckDB file, so ``emsbench hub export`` and
``hub report`` read through its API (``hub.source``). Here they run in a loop (in-process
``emsbench.cli.main`` calls in two threads, plus one ``python -m emsbench.cli`` process)
while 8 threads post 100 signed submissions (20 test countries × 5 years). Asserted: every
POST is answered 201 with JSON (no 5xx, no overload), every export and report exits 0,
every CSV parses with the published columns and never loses a country it had shown, and
the export made after the last post shows all 20 countries.

The helpers (federation folder, signed bodies, POST) live in ``bench/hub_bench.py``.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx

from emsbench.cli import main as cli_main
from emsbench.demo import stop_process
from hub.export import COLUMNS

COUNTRIES = 20
YEARS = 5
YEAR = 2024  # the year exported and reported; every country submits for it
POSTERS = 8
TEST_BUDGET = 60.0


@dataclass(frozen=True)
class Run:
    """One export or report: exit status, output path, and when it ran."""

    what: str
    status: int
    out: Path
    started: float
    ended: float


def _export_countries(path: Path) -> set[str]:
    """Countries in an export CSV; fails the test if the file does not parse as one."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS, (path, reader.fieldnames)
        rows = list(reader)
    assert rows, f"{path} has no rows"
    for row in rows:
        assert None not in row and all(v is not None for v in row.values()), (path, row)
        assert row["year"] == str(YEAR), (path, row)
    return {row["country"] for row in rows}


def test_export_and_report_while_submissions_arrive(tmp_path: Path, hb: ModuleType
                                                    ) -> None:
    started = time.monotonic()
    deadline = started + TEST_BUDGET - 15  # room for the final checks
    fed = hb.make_federation(tmp_path / "hub", COUNTRIES)
    years = [y for y in hb.YEARS if y <= YEAR][-YEARS:]
    assert YEAR in years
    bodies = [fed.sign(c, y) for c in sorted(fed.keys) for y in years]
    assert len(bodies) == 100
    # The first country's YEAR goes first, so an export has something to publish from the
    # start; the other 99 arrive in a shuffled order.
    seed = next(b for b in bodies if b.year == YEAR)
    rest = [b for b in bodies if b is not seed]
    random.Random(2024).shuffle(rest)
    config = str(fed.config_path)
    out = tmp_path / "out"

    proc = fed.start()
    try:
        with httpx.Client(timeout=30) as client:
            first = hb.post_body(client, fed.url, seed)
        assert first.status == 201, first.body

        runs: list[Run] = []
        errors: list[BaseException] = []
        stop = threading.Event()
        lock = threading.Lock()

        def loop(what: str) -> None:
            i = 0
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    i += 1
                    target = out / (f"{what}-{i:03d}.csv" if what == "export"
                                    else f"{what}-{i:03d}")
                    t0 = time.monotonic()
                    status = cli_main(["hub", what, "--config", config, "--year", str(YEAR),
                                       "--out", str(target),
                                       *(["--no-pdf"] if what == "report" else [])])
                    with lock:
                        runs.append(Run(what, status, target, t0, time.monotonic()))
            except BaseException as exc:  # noqa: B036 - reported by the test thread
                errors.append(exc)

        readers = [threading.Thread(target=loop, args=(w,), daemon=True)
                   for w in ("export", "report")]
        for t in readers:
            t.start()
        # One export as its own process, as an operator would run it, during the posts.
        external = subprocess.Popen(
            [sys.executable, "-m", "emsbench.cli", "hub", "export", "--config", config,
             "--year", str(YEAR), "--out", str(out / "external.csv")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Let the readers get going (the first run imports the report modules) first.
        while not runs and time.monotonic() < deadline:
            time.sleep(0.05)
        posting_from = time.monotonic()
        answers = hb.post_all(fed.url, rest, POSTERS)
        posting_to = time.monotonic()
        stop.set()
        for t in readers:
            t.join(timeout=max(1.0, deadline + 10 - time.monotonic()))
        external_out, _ = external.communicate(timeout=30)

        assert not errors, errors
        assert not any(t.is_alive() for t in readers), "a report or export hung"
        # Every POST answered 201 with a JSON receipt: no 5xx, no overload, no error.
        assert len(answers) == len(rest)
        bad = [(a.status, a.body or a.error) for a in answers if a.status != 201]
        assert not bad, bad[:5]
        assert all(isinstance(a.body, dict) and "signed_receipt" in a.body for a in answers)

        failed = [r for r in runs if r.status != 0]
        assert not failed, failed
        assert external.returncode == 0, external_out
        during = [r for r in runs if r.started < posting_to and r.ended > posting_from]
        assert {r.what for r in during} == {"export", "report"}, \
            "no export or no report overlapped the posts; contention was not exercised"
        seen: set[str] = set()
        exports = sorted((r for r in runs if r.what == "export"), key=lambda r: r.started)
        for r in exports:
            countries = _export_countries(r.out)
            # Submissions are only added, so a later export never loses a country.
            assert seen <= countries, (r.out, seen - countries)
            seen = countries
        for r in runs:
            if r.what == "report":
                assert (r.out / "index.html").stat().st_size > 0
        _export_countries(out / "external.csv")

        # After the last post: one more export, as a separate process, shows every country.
        final = subprocess.run(
            [sys.executable, "-m", "emsbench.cli", "hub", "export", "--config", config,
             "--year", str(YEAR), "--out", str(out / "final.csv")],
            capture_output=True, text=True, timeout=30)
        assert final.returncode == 0, final.stdout + final.stderr
        assert _export_countries(out / "final.csv") == set(fed.keys)
        health = httpx.get(f"{fed.url}/v1/health", timeout=10)
        assert health.status_code == 200 and health.json()["submissions"] == len(bodies)
        print(f"{len(exports)} exports and {len(runs) - len(exports)} reports, "
              f"{len(during)} of them during the {posting_to - posting_from:.2f} s of posting")
    finally:
        stop_process(proc)
    assert time.monotonic() - started < TEST_BUDGET
