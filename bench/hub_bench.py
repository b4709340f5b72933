"""Hub intake rate: signed submissions verified and stored per second, on loopback.

Usage: ``python bench/hub_bench.py [--n 5000] [--clients 8] [--window 500] [--keep DIR]
[--json]``

The hub runs as a real subprocess (``emsbench hub serve``) on a fresh DuckDB file, with a
three-spec test catalogue and a trust registry of many test countries (``AA``, ``AB``, …),
each with its own Ed25519 key. N conforming submissions, one per (country, year) so every
one is a new period at revision 1, are signed *before* the clock starts; then ``--clients``
threads, each with its own keep-alive connection, post them as fast as the hub answers.
Every answer must be 201. Printed:

- submissions stored per second over the whole run, p50/p95/max latency per request (the
  maximum shows DuckDB's automatic checkpoint, which holds intake while it runs);
- the same per window of ``--window`` stored submissions, in the order they were answered
  (the first window: 0 to 500 stored, …), to show whether intake slows as the store fills,
  and the last window's rate over the first's;
- the CPU time the hub process and the posting clients spent per submission, and the
  machine's load average before and after (other work on the machine shows there);
- the size of the database file (and its write-ahead log) at the end of the run, and
  after the hub stopped.

The clients post with ``http.client``: on a small machine they share the hub's cores, and
it costs them about a third of the CPU that ``httpx`` does.

The helpers here (``make_federation``, ``sign_all``, ``post_body``, ``post_all``) also set up
the hub for the crash and contention tests (``tests/hub/test_crash.py``,
``test_contention.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import math
import os
import shutil
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from emsbench import dsse
from emsbench.demo import free_port, start_hub, stop_process
from emsbench.specs import IndicatorSpec, catalogue_sha256, load_specs
from emsbench.wire import (
    SUBMISSION_TYPE,
    Cell,
    DataQuality,
    IndicatorResult,
    Period,
    Submission,
)
from hub.config import HubConfig, PolicyConfig, write_hub_config
from hub.trust_file import write_registry

FIRST_YEAR = 2015
YEARS = tuple(range(FIRST_YEAR, FIRST_YEAR + 10))  # 2015 … 2024, inside the hub's window

# The hub tests' catalogue: two shares (one by urbanicity) and one distribution by urgency
# level, so every kind of cell is exercised.
CATALOGUE = Path(__file__).resolve().parents[1] / "tests" / "hub" / "catalogue"


def sample_results(specs: list[IndicatorSpec]) -> list[IndicatorResult]:
    """Conforming results of the test catalogue at threshold 5, full grids: one of each kind
    of cell (released share, withheld share, coarsened histogram, withheld histogram, empty
    histogram). T-ALPHA's population is T-BETA's total, so T-BETA withholds a second cell
    (secondary suppression): with only rural withheld, rural = T-ALPHA − urban."""
    by_id = {s.id: s for s in specs}

    def result(spec_id: str, cells: list[Cell]) -> IndicatorResult:
        s = by_id[spec_id]
        return IndicatorResult(spec_id=s.id, spec_version=s.version, spec_sha256=s.sha256,
                               type=s.type, strata=list(s.strata), cells=cells)

    return [
        result("T-ALPHA", [Cell(numerator=40, denominator=100)]),
        result("T-BETA", [Cell(stratum={"urbanicity": "urban"}, numerator=30, denominator=60),
                          Cell(stratum={"urbanicity": "rural"}, suppressed=True),
                          Cell(stratum={"urbanicity": "unknown"}, suppressed=True)]),
        result("T-TIME", [Cell(stratum={"urgency_level": "U1"},
                               bins=[(2, 2, 10), (3, 4, 25), (5, 10, 6)]),
                          Cell(stratum={"urgency_level": "U2"}, suppressed=True),
                          Cell(stratum={"urgency_level": "U3"}, bins=[]),
                          Cell(stratum={"urgency_level": "unknown"}, bins=[])]),
    ]


def write_specs(spec_dir: Path) -> None:
    """The three-spec test catalogue (T-ALPHA, T-BETA, T-TIME)."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    for path in CATALOGUE.glob("*.yaml"):
        shutil.copyfile(path, spec_dir / path.name)


def country_codes(n: int) -> list[str]:
    """``n`` two-letter test codes: AA, AB, … AZ, BA, … (at most 676)."""
    codes = ["".join(p) for p in itertools.product(string.ascii_uppercase, repeat=2)]
    if n > len(codes):
        raise ValueError(f"at most {len(codes)} test countries")
    return codes[:n]


@dataclass(frozen=True)
class Signed:
    """One signed submission, ready to post: the exact body bytes and what identifies it."""

    submission_id: str
    country: str
    year: int
    revision: int
    body: bytes
    payload_sha256: str


@dataclass
class Federation:
    """A hub folder: catalogue, trust registry of test countries, keys and hub.toml."""

    root: Path
    config_path: Path
    config: HubConfig
    keys: dict[str, dsse.KeyPair]
    specs: list[IndicatorSpec]
    catalogue: str
    created_at: datetime

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def hub_public_key_path(self) -> Path:
        return self.config.key_path.with_suffix(".pub")

    def token(self) -> str:
        return self.config.token_path.read_text(encoding="ascii").strip()

    def start(self, log_name: str = "hub.log") -> subprocess.Popen[bytes]:
        """Start ``emsbench hub serve`` on this folder's config; returns once it answers."""
        return start_hub(self.config_path, self.config.port, self.root / log_name)

    def results(self) -> list[IndicatorResult]:
        return sample_results(self.specs)

    def submission(self, country: str, year: int, revision: int = 1) -> Submission:
        return Submission(
            submission_id=f"{country}-{year}-r{revision:04d}", country=country,
            period=Period(year=year), catalogue=self.catalogue, revision=revision,
            created_at=self.created_at, software_version="0.1.0", model_version="1",
            disclosure_threshold=5,
            data_quality=DataQuality(rows_read=120, rows_accepted=100,
                                     rejected_by_reason={"missing:urgency_level": 20}),
            indicators=self.results())

    def sign(self, country: str, year: int, revision: int = 1) -> Signed:
        doc = self.submission(country, year, revision)
        payload = doc.to_bytes()
        envelope = dsse.sign(payload, self.keys[country], payload_type=SUBMISSION_TYPE)
        return Signed(doc.submission_id, country, year, revision,
                      dsse.envelope_bytes(envelope), hashlib.sha256(payload).hexdigest())


def make_federation(root: Path, n_countries: int, *, max_concurrent: int = 32,
                    port: int | None = None) -> Federation:
    """Specs, a trust registry of ``n_countries`` fresh keys and ``hub.toml`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    spec_dir = root / "specs"
    write_specs(spec_dir)
    specs = load_specs(spec_dir)
    keys = {c: dsse.generate_key() for c in country_codes(n_countries)}
    write_registry(root / "trust.toml",
                   {c: [dsse.public_key_b64(k.public_key)] for c, k in keys.items()})
    config = HubConfig(host="127.0.0.1", port=port or free_port(), database=root / "hub.duckdb",
                       trust_registry=root / "trust.toml", specs=spec_dir,
                       max_concurrent=max_concurrent, policy=PolicyConfig(first_year=FIRST_YEAR))
    config_path = root / "hub.toml"
    write_hub_config(config_path, config)
    return Federation(root=root, config_path=config_path, config=config, keys=keys,
                      specs=specs, catalogue=catalogue_sha256(specs),
                      created_at=(datetime.now(UTC) - timedelta(minutes=1)).replace(
                          microsecond=0))


def periods(n: int, countries: list[str]) -> list[tuple[str, int]]:
    """``n`` distinct (country, year) periods, every country's years in turn."""
    out = [(c, y) for y in YEARS for c in countries]
    if n > len(out):
        raise ValueError(f"{len(countries)} countries × {len(YEARS)} years hold only "
                         f"{len(out)} periods")
    return out[:n]


def sign_all(fed: Federation, n: int) -> list[Signed]:
    """``n`` signed submissions, each for a distinct period at revision 1."""
    return [fed.sign(c, y) for c, y in periods(n, sorted(fed.keys))]


@dataclass(frozen=True)
class Answer:
    """One POST: HTTP status (None: no answer, e.g. the connection broke), JSON body and
    the times it was sent and answered (``time.perf_counter``)."""

    index: int
    status: int | None
    body: Any
    started: float
    ended: float
    error: str = ""

    @property
    def latency(self) -> float:
        return self.ended - self.started


def post_body(client: httpx.Client, url: str, signed: Signed, index: int = 0) -> Answer:
    """POST one signed submission; a transport error is an answer with status None.

    ``body`` is the parsed JSON, or the text prefixed ``NOT JSON:`` if it does not parse.
    """
    started = time.perf_counter()
    try:
        r = client.post(f"{url}/v1/submissions", content=signed.body,
                        headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        return Answer(index, None, None, started, time.perf_counter(),
                      f"{type(exc).__name__}: {exc}")
    ended = time.perf_counter()
    try:
        body: Any = r.json()
    except ValueError:
        body = f"NOT JSON: {r.text[:300]}"
    return Answer(index, r.status_code, body, started, ended)


def post_all(url: str, bodies: list[Signed], clients: int, timeout: float = 30.0
             ) -> list[Answer]:
    """Post every body once from ``clients`` threads, each with its own keep-alive
    connection (``http.client``, which needs far less CPU than ``httpx``), in list order.

    As ``post_body``: a transport error is an answer with status None (and the thread
    connects again), a body that does not parse is ``NOT JSON: …``.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"{parts.path.rstrip('/')}/v1/submissions"
    headers = {"content-type": "application/json"}
    answers: list[Answer | None] = [None] * len(bodies)
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        con: http.client.HTTPConnection | None = None
        while True:
            with lock:
                i = next(counter)
            if i >= len(bodies):
                break
            if con is None:
                con = http.client.HTTPConnection(host, port, timeout=timeout)
            started = time.perf_counter()
            try:
                con.request("POST", path, body=bodies[i].body, headers=headers)
                r = con.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as exc:
                answers[i] = Answer(i, None, None, started, time.perf_counter(),
                                    f"{type(exc).__name__}: {exc}")
                con.close()
                con = None
                continue
            ended = time.perf_counter()
            try:
                body: Any = json.loads(data)
            except ValueError:
                body = f"NOT JSON: {data[:300].decode('utf-8', 'replace')}"
            answers[i] = Answer(i, r.status, body, started, ended)
            if r.will_close:
                con.close()
                con = None
        if con is not None:
            con.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a for a in answers if a is not None]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(answers: list[Answer]) -> dict[str, float]:
    """Rate (answers per second between the first send and the last answer) and latency."""
    span = max(a.ended for a in answers) - min(a.started for a in answers)
    latencies = [a.latency for a in answers]
    return {"n": len(answers), "seconds": span, "per_second": len(answers) / span,
            "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
            "max_ms": 1000 * max(latencies)}


def windows(answers: list[Answer], size: int) -> list[dict[str, float]]:
    """The rate while the store grew by each ``size`` submissions: answers in the order they
    came back; window k runs from the (k·size)-th answer (the first send, for k = 0) to
    the ((k+1)·size)-th, with the latency of the requests answered in it."""
    done = sorted(answers, key=lambda a: a.ended)
    first = min(a.started for a in answers)
    out = []
    for k in range(0, len(done), size):
        part = done[k:k + size]
        span = part[-1].ended - (done[k - 1].ended if k else first)
        latencies = [a.latency for a in part]
        out.append({"from": k, "to": k + len(part), "seconds": span,
                    "per_second": len(part) / span,
                    "p50_ms": 1000 * percentile(latencies, 50),
                    "p95_ms": 1000 * percentile(latencies, 95),
                    "max_ms": 1000 * max(latencies)})
    return out


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_bytes(db: Path) -> tuple[int, int]:
    """Sizes of the DuckDB file and of its write-ahead log (0 if absent)."""
    wal = db.with_name(db.name + ".wal")
    return (db.stat().st_size if db.exists() else 0, wal.stat().st_size if wal.exists() else 0)


def run(n: int, clients: int, root: Path, window: int = 500) -> dict[str, Any]:
    years = len(YEARS)
    fed = make_federation(root, max(1, math.ceil(n / years)))
    started = time.perf_counter()
    bodies = sign_all(fed, n)
    signing = time.perf_counter() - started
    load_before = os.getloadavg()
    proc = fed.start()
    try:
        hub_cpu = process_cpu_seconds(proc.pid)
        client_cpu = time.process_time()
        answers = post_all(fed.url, bodies, clients)
        client_cpu = time.process_time() - client_cpu
        hub_end = process_cpu_seconds(proc.pid)
        hub_cpu = None if hub_cpu is None or hub_end is None else hub_end - hub_cpu
        load_after = os.getloadavg()
        running = db_bytes(fed.config.database)
        stored = httpx.get(f"{fed.url}/v1/health", timeout=30).json()["submissions"]
    finally:
        stop_process(proc)
    stopped = db_bytes(fed.config.database)
    bad = [a for a in answers if a.status != 201]
    if bad:
        first = bad[0]
        raise SystemExit(f"{len(bad)} of {n} posts were not stored (201); first: "
                         f"status {first.status} {first.body or first.error}")
    if stored != n:
        raise SystemExit(f"the hub holds {stored} submissions, expected {n}")
    per_window = windows(answers, window)
    return {
        "n": n, "clients": clients, "countries": len(fed.keys), "signing_seconds": signing,
        "body_bytes": sum(len(b.body) for b in bodies) // n,
        "all": summary(answers), "window": window, "windows": per_window,
        "last_over_first": per_window[-1]["per_second"] / per_window[0]["per_second"],
        "hub_cpu_ms_per_submission": None if hub_cpu is None else 1000 * hub_cpu / n,
        "client_cpu_ms_per_submission": 1000 * client_cpu / n,
        "load_before": load_before[0], "load_after": load_after[0],
        "cores": os.cpu_count(),
        "db_bytes_running": running[0], "wal_bytes_running": running[1],
        "db_bytes_stopped": stopped[0], "wal_bytes_stopped": stopped[1],
    }


def report(r: dict[str, Any]) -> str:
    lines = [f"{r['n']:,} signed submissions ({r['body_bytes']:,} bytes each, "
             f"{r['countries']} countries), {r['clients']} concurrent clients, hub on loopback",
             f"  (signed beforehand in {r['signing_seconds']:.2f} s, not counted)",
             f"{'stored':<14}{'n':>6}{'seconds':>10}{'stored/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
             f"{'max ms':>9}"]

    def row(name: str, s: dict[str, float]) -> str:
        return (f"{name:<14}{s['n'] if 'n' in s else s['to'] - s['from']:>6.0f}"
                f"{s['seconds']:>10.2f}{s['per_second']:>10.1f}{s['p50_ms']:>9.1f}"
                f"{s['p95_ms']:>9.1f}{s['max_ms']:>9.0f}")

    lines.append(row("whole run", r["all"]))
    for w in r["windows"]:
        lines.append(row(f"{w['from']:,.0f}–{w['to']:,.0f}", w))
    first, last = r["windows"][0], r["windows"][-1]
    lines.append(f"last window ÷ first: {last['per_second']:.1f} ÷ {first['per_second']:.1f} "
                 f"stored/s = {r['last_over_first']:.2f}")
    hub = r["hub_cpu_ms_per_submission"]
    lines.append(f"CPU per submission: hub {'n/a' if hub is None else f'{hub:.2f}'} ms, "
                 f"clients {r['client_cpu_ms_per_submission']:.2f} ms; {r['cores']} cores, "
                 f"load average {r['load_before']:.2f} before, {r['load_after']:.2f} after")
    mib = 1024 * 1024
    lines.append(f"database at the end: {r['db_bytes_running'] / mib:.1f} MiB + WAL "
                 f"{r['wal_bytes_running'] / mib:.1f} MiB; after the hub stopped: "
                 f"{r['db_bytes_stopped'] / mib:.1f} MiB + WAL "
                 f"{r['wal_bytes_stopped'] / mib:.1f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=5000, help="submissions to post (default 5000)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--window", type=int, default=500,
                   help="stored submissions per window of the printed rates (default 500)")
    p.add_argument("--keep", type=Path, default=None, help="keep the hub folder here")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if args.n < 5 or args.clients < 1 or args.window < 1:
        p.error("--n must be at least 5, --clients and --window at least 1")
    if args.keep is not None:
        result = run(args.n, args.clients, args.keep, args.window)
    else:
        with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
            result = run(args.n, args.clients, Path(tmp), args.window)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
