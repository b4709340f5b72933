"""The demo federation: six countries, several years, one hub, one report, on this machine.

Everything a real deployment has, in one folder: each country gets one key pair and, for
every year, a synthetic data file and a ``node-<year>.toml`` beside it (one node folder
per country, as a real country runs its node once a year with the same key, outbox and
audit log); the hub gets a trust registry of the six public keys and a ``hub.toml``. The
hub runs as a separate process on loopback (the real HTTP API); the node flows run in
this process (one embedded Prefect server for all), each country year by year, the US
beside the Nordic countries (``LANES``), while a second process generates the next
country-years' synthetic data; then ``publish`` writes the report and the export from the
hub's database.

The synthetic parameters move from year to year (``node.synth.trends``), so the years
differ by real trends, not only by noise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # the demo sits on top of the hub; it imports it only when it runs
    from hub.report import ReportFiles

COUNTRIES = ("NO", "SE", "DK", "FI", "IS", "US")


@dataclass(frozen=True)
class Published:
    """What ``publish`` wrote, and how many countries its year merged."""

    reports: dict[str, ReportFiles]  # language -> the annual report's HTML and PDF
    site: Path  # the public site's landing page
    export: Path
    jsonstat: Path
    submissions: int  # countries merged in the published year

    def paths(self) -> list[tuple[str, Path]]:
        """(label, path) of each output, in the order to print them."""
        out: list[tuple[str, Path]] = []
        for lang, files in self.reports.items():
            out.append((f"report ({lang})", files.html))
            if files.pdf is not None:
                out.append((f"report PDF ({lang})", files.pdf))
        return [*out, ("public site", self.site), ("figures", self.export),
                ("open data (JSON-stat 2.0)", self.jsonstat)]


@dataclass(frozen=True)
class DemoResult(Published):
    years: list[int]  # every year each country delivered, oldest first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_hub_config(directory: Path, port: int, public: str = "") -> Path:
    """A loopback hub's ``hub.toml``; ``public`` the site folder it serves under /public/
    (relative to the file; empty: its default beside the database)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.toml"
    path.write_text(f'[hub]\nhost = "127.0.0.1"\nport = {port}\ndatabase = "hub.duckdb"\n'
                    'trust_registry = "trust.toml"\n'
                    + (f'public = "{public}"\n' if public else ""), encoding="utf-8")
    return path


def start_hub(config: Path, port: int, log: Path, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """Start ``emsbench hub serve`` in its own process; return once /v1/health answers."""
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "emsbench.cli", "hub", "serve", "--config",
                             str(config)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited with status {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"the hub did not answer within {timeout:.0f} s; see {log}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a server we started: terminate, then kill if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def approve_catalogue(directory: Path, name: str = "demo") -> tuple[Path, Path]:
    """The packaged catalogue as a release signed by two of three demo approvers, as a
    working group would sign it; returns (release file, approvers file)."""
    from datetime import UTC, datetime

    from emsbench import dsse
    from emsbench.files import write_atomic
    from emsbench.release import build_release, sign_release
    from emsbench.specs import load_specs

    directory.mkdir(parents=True, exist_ok=True)
    keys = [dsse.generate_key() for _ in range(3)]
    lines = ["# The demo's working-group approvers: 2 of these 3 must sign a release.",
             "threshold = 2", ""]
    for i, k in enumerate(keys):
        lines += ["[[approver]]", f'name = "demo approver {i + 1}"',
                  f'key = "{dsse.public_key_b64(k.public_key)}"', ""]
    approvers = directory / "approvers.toml"
    write_atomic(approvers, "\n".join(lines).encode("utf-8"))
    envelope = sign_release(build_release(load_specs(), name, datetime.now(UTC).date()),
                            keys[0])
    envelope = sign_release(envelope, keys[1])
    release = directory / "release.json"
    write_atomic(release, dsse.envelope_bytes(envelope))
    return release, approvers


DEMO_FORMATS = {"NO": "national-no", "SE": "national-se", "DK": "national-dk",
                "FI": "national-fi", "IS": "national-is", "US": "nemsis"}


def demo_years(year: int, years: int) -> list[int]:
    """The ``years`` years ending with ``year``, oldest first."""
    if years < 1:
        raise ValueError("years must be at least 1")
    return list(range(year - years + 1, year + 1))


def setup_node(out: Path, country: str) -> tuple[Path, str]:
    """A fresh node folder for ``country`` with its key pair; returns (folder, public key).

    A rerun in the same folder makes a fresh identity and forgets the previous run's
    outbox, audit log, configs and data: the demo starts a new federation (new hub
    database), and an old outbox and log would number revisions and chain entries from
    where the previous run left off.
    """
    from node.keys import keygen

    node_dir = out / "nodes" / country
    node_dir.mkdir(parents=True, exist_ok=True)
    key = node_dir / f"{country}.pem"
    key.unlink(missing_ok=True)
    _, pub = keygen(key)
    shutil.rmtree(node_dir / "outbox", ignore_errors=True)
    (node_dir / "audit.jsonl").unlink(missing_ok=True)
    for old in [*node_dir.glob("node*.toml"), *node_dir.glob(f"{country}-*"),
                *node_dir.glob(f"population-{country}-*")]:
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    return node_dir, pub


def data_target(node_dir: Path, country: str, year: int) -> Path:
    """Where the synthetic input of a country-year goes, in its national format."""
    if DEMO_FORMATS[country] == "nemsis":
        return node_dir / f"{country}-{year}-nemsis"  # a folder of NEMSIS tables
    return node_dir / f"{country}-{year}.csv"


@dataclass(frozen=True)
class Generated:
    """A country-year's synthetic input, written."""

    data: Path
    rows: int
    seconds: float


def generate_input(country: str, year: int, target: Path, rows: int, seed: int) -> Generated:
    """Write a country-year's synthetic missions in its national format (run in a worker
    process: module-level, so it pickles)."""
    from node.synth.formats import generate_as

    started = time.monotonic()
    data, n = generate_as(DEMO_FORMATS[country], country, year, target, rows=rows, seed=seed)
    return Generated(data, n, time.monotonic() - started)


def write_node_year(node_dir: Path, country: str, year: int, data: Path, rows: int,
                    hub_url: str, threshold: int, hub_key: Path | None = None,
                    release: tuple[Path, Path] | None = None, seed: int = 2025) -> Path:
    """The scaled population and ``node-<year>.toml`` of one country-year; returns the config.

    ``hub_key`` is the hub's public key file, which the node needs to prove delivery;
    ``release`` the signed catalogue release and approvers file the node must run.
    """
    from node.config import NodeConfig, write_node_config
    from node.synth.population import volume_fraction, write_scaled_population

    # Rates divide by the population: the synthetic year is rows / national yearly volume
    # of the real one (the demo's --scale, e.g. 0.1), so the node divides by the official
    # population scaled by that same fraction (node.toml key 'population'), and incidence
    # and responses per 1,000 come out near the national figures. Only 2025 is shipped:
    # the synthetic population is the same every year, so 2025's stands for the others.
    population = write_scaled_population(
        node_dir / f"population-{country}-{year}.csv", country, year,
        volume_fraction(country, rows, year), nearest=True)
    # The demo runs unattended; a real node reviews before it sends (review = true).
    # Key, outbox, audit log, working and reports folders are the node's, for every year.
    # The submission says its data are synthetic, so the hub marks what it publishes.
    fmt = DEMO_FORMATS[country]
    cfg = NodeConfig(review=False, country=country, year=year, data=Path(data.name),
                     population=Path(population.name), format=fmt, synthetic=True,
                     source_description=f"synthetic missions in the {fmt} format, made by "
                                        f"emsbench synth (seed {seed})",
                     key=Path(f"{country}.pem"), outbox=Path("outbox"), hub_url=hub_url,
                     hub_key=hub_key, disclosure_threshold=threshold,
                     release=release and release[0], approvers=release and release[1])
    config = node_dir / f"node-{year}.toml"
    write_node_config(config, cfg)
    return config


# The demo's default share of each country's yearly volume: every Nordic country whole, so
# that case-mix adjusted survival (SURV-OE, about 160 case-mix cells per endpoint) has the
# arrests it needs (a tenth of Norway is some 300 arrests, nearly all in withheld cells),
# and a tenth of the US (5 M missions, which alone has ample arrests).
DEFAULT_SCALE = {"US": 0.1}


def country_scale(country: str, scale: float | None) -> float:
    return scale if scale is not None else DEFAULT_SCALE.get(country, 1.0)


def country_rows(country: str, scale: float | None, year: int = 2025) -> int:
    """Missions to generate: the scale's share of the country's volume in ``year`` (which
    grows from year to year, ``node.synth.trends``)."""
    from node.synth.trends import country_for_year

    volume = country_for_year(country, year).yearly_missions
    return max(200, round(volume * country_scale(country, scale)))


def population_stand_ins(years: list[int]) -> dict[int, int]:
    """Years without a shipped population of some demo country -> the year standing in."""
    from node.synth.population import population_year, shipped_years

    return {y: population_year(c, y) for y in years for c in COUNTRIES
            if y not in shipped_years(c)}


def _background() -> None:
    # The generator only fills CPU the node leaves idle: the node (and Prefect's temporary
    # server, which must start within its timeout) comes first.
    os.nice(10)


@contextmanager
def generator_pool() -> Iterator[ProcessPoolExecutor]:
    """One worker process for synthetic data, at low priority, so the next country-years
    are generated while a node runs (a node uses little more than one of two cores on
    average, measured); on an error, the queued ones are dropped. Spawned, not forked:
    this process runs threads (Prefect's)."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                               initializer=_background)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_demo(out: Path, year: int = 2025, scale: float | None = None, threshold: int = 5,
             seed: int = 2025, say: Callable[[str], None] = print,
             years: int = 3) -> DemoResult:
    """Federate every country for each of the ``years`` years ending with ``year``, through
    a hub on loopback, then ``publish`` the last year."""
    from hub.signing import load_or_create_hub_key, public_key_path
    from hub.trust_file import write_registry

    periods = demo_years(year, years)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # The site goes to demo-out/site, which `emsbench hub serve --config
    # demo-out/hub/hub.toml` then serves under /public/.
    hub_config = write_hub_config(out / "hub", port, public="../site")
    hub_url = f"http://127.0.0.1:{port}"
    db = out / "hub" / "hub.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    # The hub's receipt key (its default path: beside the database) exists before any node
    # config, because each node needs its public half to verify receipts.
    hub_key_file = out / "hub" / "hub-key.pem"
    load_or_create_hub_key(hub_key_file)
    release = approve_catalogue(out / "catalogue")
    nodes, keys = {}, {}
    for country in COUNTRIES:
        nodes[country], pub = setup_node(out, country)
        keys[country] = [pub]
    write_registry(out / "hub" / "trust.toml", keys)
    span = f"{periods[0]}-{periods[-1]}" if len(periods) > 1 else str(year)
    say(f"[1/4] catalogue release signed by 2 of 3 approvers ({release[0]}); a key pair for "
        f"each of {', '.join(COUNTRIES)}; synthetic data for {span} ("
        + (f"scale {scale}" if scale is not None else
           "Nordic countries at their full yearly volume, the US at a tenth")
        + "), generated in a second process while the nodes run")
    stand_ins = population_stand_ins(periods)
    if stand_ins:
        say("      rates divide by the shipped population; it has no figures for "
            + "; ".join(f"{y} ({used} stands in)" for y, used in stand_ins.items())
            + ": the synthetic population is the same every year")
    say(f"[2/4] starting the hub on {hub_url} (log: {out / 'hub' / 'hub.log'})")
    proc = start_hub(hub_config, port, out / "hub" / "hub.log")
    try:
        say(f"[3/4] running the node flows of {len(COUNTRIES)} countries for each of "
            f"{len(periods)} year{'s' if len(periods) > 1 else ''}, the US beside the "
            "Nordic countries")
        lanes = [[(c, y) for y in periods for c in lane] for lane in LANES]
        with generator_pool() as pool:
            jobs: dict[tuple[str, int], Future[Generated]] = {
                (c, y): pool.submit(generate_input, c, y, data_target(nodes[c], c, y),
                                    country_rows(c, scale, y), seed)
                for c, y in in_turn(lanes)}

            def step(country: str, y: int) -> str:
                made = jobs[country, y].result()
                config = write_node_year(nodes[country], country, y, made.data, made.rows,
                                         hub_url, threshold,
                                         hub_key=public_key_path(hub_key_file),
                                         release=release, seed=seed)
                return run_country_year(config, country, y, made)

            run_lanes(lanes, step, say)
    finally:
        stop_process(proc)
    say(f"[4/4] merging {', '.join(map(str, periods))}; writing the {year} report (HTML and "
        "PDF, English and Norwegian), the public site and the open data")
    published = publish(out, hub_config, year, say)
    return DemoResult(**vars(published), years=periods)


# Node runs go in two lanes, side by side, as countries run theirs on their own machines:
# the US node spends most of its time reading NEMSIS text on about one core (measured on
# two cores: 73 of its 87 s, 1.1 cores on average), so the Nordic nodes use the other.
LANES = (("NO", "SE", "DK", "FI", "IS"), ("US",))


def in_turn(lanes: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """Every lane's country-years, taking each lane's next in turn: the order to generate
    them in, so that no lane waits long for its next input."""
    order: list[tuple[str, int]] = []
    for i in range(max(map(len, lanes), default=0)):
        order += [lane[i] for lane in lanes if i < len(lane)]
    return order


def run_lanes(lanes: list[list[tuple[str, int]]], step: Callable[[str, int], str],
              say: Callable[[str], None]) -> None:
    """Run ``step`` on each lane's country-years in order, the lanes side by side, and
    ``say`` each step's line. The first step runs alone (it starts Prefect's temporary
    server, whose start two flows must not race for); after an error the other lanes
    stop at their next step, and the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    lock, warm, stop = threading.Lock(), threading.Event(), threading.Event()
    first = next((lane[0] for lane in lanes if lane), None)

    def lane(items: list[tuple[str, int]]) -> None:
        for country, year in items:
            if (country, year) != first:
                warm.wait()
            if stop.is_set():
                return
            try:
                line = step(country, year)
            except BaseException:
                stop.set()
                raise
            finally:
                warm.set()
            with lock:
                say(line)

    with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as threads:
        running = [threads.submit(lane, items) for items in lanes]
        try:
            for done in running:
                done.result()
        finally:
            stop.set()


def run_country_year(config: Path, country: str, year: int, made: Generated) -> str:
    """Run the node of one country-year; its progress line. RuntimeError when the hub did
    not take the submission."""
    from node.flow import run_node

    started = time.monotonic()
    result = run_node(config)
    sid = result.submission.submission_id
    if result.receipt is None:
        detail = result.delivery.message if result.delivery else "no hub configured"
        raise RuntimeError(f"{country} {year}: submission {sid} was not delivered: {detail}")
    return (f"  {country} {year}: {made.rows:,} missions as {DEMO_FORMATS[country]} "
            f"(generated in {made.seconds:.1f} s); {sid} accepted, receipt verified "
            f"(node {time.monotonic() - started:.1f} s)")


def publish(out: Path, hub_config: Path, year: int,
            say: Callable[[str], None] = print) -> Published:
    """Step 4, from the hub's database: the annual report of ``year`` with the trend over
    every year held, in both languages, as HTML and PDF, in the site's ``report/<year>/``
    (so the site's landing page links them); the public site; the CSV and JSON-stat."""
    from hub.config import load_hub_config
    from hub.history import load_history
    from hub.jsonstat import jsonstat_path
    from hub.messages import LANGUAGES
    from hub.pdf import PdfError
    from hub.report import ReportFiles, export_csv, export_jsonstat, write_report
    from hub.site import publish as publish_site

    cfg = load_hub_config(hub_config)
    history = load_history(cfg)
    for skipped, why in sorted(history.skipped.items()):
        say(f"  year {skipped} left out: {why}")
    reports = {}
    pdf = True
    for lang in LANGUAGES:
        started = time.monotonic()
        folder = cfg.public_dir / "report" / str(year) / lang
        try:
            reports[lang] = write_report(history, year, folder, lang, pdf=pdf)
        except PdfError as exc:  # no Chromium here: the HTML is written, say how to get the PDF
            pdf = False
            reports[lang] = ReportFiles(folder / "index.html", None)
            say(f"  the PDF is not written: {exc}; then: emsbench hub report --config "
                f"{hub_config} --year {year} --out {folder.parent}/<lang>")
        say(f"  report ({lang}): {'HTML and PDF' if reports[lang].pdf else 'HTML'} in "
            f"{time.monotonic() - started:.1f} s")
    started = time.monotonic()
    site = publish_site(history, cfg.public_dir)
    say(f"  public site: {len(site.pages)} pages in {time.monotonic() - started:.1f} s")
    view, catalogues = history.year(year).view, history.catalogues
    export = export_csv(view, catalogues, out / "results.csv")
    opendata = export_jsonstat(view, catalogues, jsonstat_path(export))
    return Published(reports=reports, site=site.out / "index.html", export=export,
                     jsonstat=opendata, submissions=len(view.submissions))


def quiet_prefect() -> None:
    """Prefect settings of the demo. Its console stays readable, one line per country-year:
    Prefect logs errors only, to the console. The nodes' data-quality warnings (the
    synthetic data's deliberately bad rows, columns a national format lacks) are in each
    node's ``reports/data-quality-<year>.html``."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    # Prefect's temporary server must answer within 20 s by default, which a busy machine
    # (the data generator beside the nodes, other work) can miss.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
