"""The demo federation: six countries, one hub, one report, on this machine.

Everything a real deployment has, in one folder: each country gets a key pair, a
synthetic data file and a ``node.toml``; the hub gets a trust registry of the six public
keys and a ``hub.toml``. The hub runs as a separate process on loopback (the real HTTP
API), the six node flows run one after another in this process (one embedded Prefect
server for all six), then the report and the export are written from the hub's database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

COUNTRIES = ("NO", "SE", "DK", "FI", "IS", "US")


@dataclass(frozen=True)
class DemoResult:
    report: Path
    export: Path
    jsonstat: Path
    submissions: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_hub_config(directory: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.toml"
    path.write_text(f'[hub]\nhost = "127.0.0.1"\nport = {port}\ndatabase = "hub.duckdb"\n'
                    'trust_registry = "trust.toml"\n', encoding="utf-8")
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


def setup_country(out: Path, country: str, year: int, rows: int, hub_url: str,
                  threshold: int, seed: int, say: Callable[[str], None],
                  hub_key: Path | None = None, release: tuple[Path, Path] | None = None
                  ) -> tuple[Path, str]:
    """Key pair, synthetic data and node.toml for one country; returns (config, public key).

    ``hub_key`` is the hub's public key file, which the node needs to prove delivery;
    ``release`` the signed catalogue release and approvers file the node must run.
    """
    from node.config import NodeConfig, write_node_config
    from node.keys import keygen
    from node.synth.formats import generate_as
    from node.synth.population import volume_fraction, write_scaled_population

    node_dir = out / "nodes" / country
    node_dir.mkdir(parents=True, exist_ok=True)
    key = node_dir / f"{country}.pem"
    if key.exists():  # a rerun in the same folder makes a fresh identity
        key.unlink()
    _, pub = keygen(key)
    # A rerun starts a fresh federation (new hub database): old outbox and log would
    # number revisions and chain entries from where the previous run left off.
    shutil.rmtree(node_dir / "outbox", ignore_errors=True)
    (node_dir / "audit.jsonl").unlink(missing_ok=True)
    # Each node reads its own national export format (the US: NEMSIS tables), as it would
    # in production; the adapters map them to the common model.
    fmt = DEMO_FORMATS[country]
    for old in node_dir.glob(f"{country}-{year}*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    target = node_dir / (f"{country}-{year}-nemsis" if fmt == "nemsis"
                         else f"{country}-{year}.csv")
    started = time.monotonic()
    data, _ = generate_as(fmt, country, year, target, rows=rows, seed=seed)
    say(f"  {country}: {rows:,} synthetic missions as {fmt} in "
        f"{time.monotonic() - started:.1f} s")
    # Rates divide by the population: the synthetic year is rows / national yearly volume
    # of the real one (the demo's --scale, e.g. 0.1), so the node divides by the official
    # population scaled by that same fraction (node.toml key 'population'), and incidence
    # and responses per 1,000 come out near the national figures.
    population = write_scaled_population(node_dir / f"population-{country}-{year}.csv",
                                         country, year, volume_fraction(country, rows))
    # The demo runs unattended; a real node reviews before it sends (review = true).
    cfg = NodeConfig(review=False, country=country, year=year, data=Path(data.name),
                     population=Path(population.name), format=fmt, key=Path(key.name),
                     outbox=Path("outbox"), hub_url=hub_url, hub_key=hub_key,
                     disclosure_threshold=threshold, release=release and release[0],
                     approvers=release and release[1])
    config = node_dir / "node.toml"
    write_node_config(config, cfg)
    return config, pub


# The demo's default share of each country's yearly volume: every Nordic country whole, so
# that case-mix adjusted survival (SURV-OE, about 160 case-mix cells per endpoint) has the
# arrests it needs (a tenth of Norway is some 300 arrests, nearly all in withheld cells),
# and a tenth of the US (5 M missions, which alone has ample arrests).
DEFAULT_SCALE = {"US": 0.1}


def country_scale(country: str, scale: float | None) -> float:
    return scale if scale is not None else DEFAULT_SCALE.get(country, 1.0)


def country_rows(country: str, scale: float | None) -> int:
    from node.synth.calibration import calibration

    return max(200, round(calibration(country).yearly_missions * country_scale(country, scale)))


def run_demo(out: Path, year: int = 2025, scale: float | None = None, threshold: int = 5,
             seed: int = 2025, say: Callable[[str], None] = print) -> DemoResult:
    from hub.config import load_hub_config
    from hub.jsonstat import jsonstat_path
    from hub.report import build_report, export_csv, export_jsonstat
    from hub.signing import load_or_create_hub_key, public_key_path
    from hub.source import load_period
    from hub.trust_file import write_registry
    from node.flow import run_node

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    hub_config = write_hub_config(out / "hub", port)
    hub_url = f"http://127.0.0.1:{port}"
    db = out / "hub" / "hub.duckdb"
    for stale in (db, db.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    # The hub's receipt key (its default path: beside the database) exists before any node
    # config, because each node needs its public half to verify receipts.
    hub_key_file = out / "hub" / "hub-key.pem"
    load_or_create_hub_key(hub_key_file)
    release = approve_catalogue(out / "catalogue")
    say(f"[1/4] catalogue release signed by 2 of 3 approvers ({release[0]}); keys, synthetic "
        f"data and node configs for {', '.join(COUNTRIES)} ("
        + (f"scale {scale}" if scale is not None else
           "Nordic countries at their full yearly volume, the US at a tenth") + ")")
    configs, keys = {}, {}
    for country in COUNTRIES:
        configs[country], pub = setup_country(out, country, year, country_rows(country, scale),
                                              hub_url, threshold, seed, say,
                                              hub_key=public_key_path(hub_key_file),
                                              release=release)
        keys[country] = [pub]
    write_registry(out / "hub" / "trust.toml", keys)
    say(f"[2/4] starting the hub on {hub_url} (log: {out / 'hub' / 'hub.log'})")
    proc = start_hub(hub_config, port, out / "hub" / "hub.log")
    try:
        say("[3/4] running the six node flows")
        for country in COUNTRIES:
            started = time.monotonic()
            result = run_node(configs[country])
            sid = result.submission.submission_id
            if result.receipt is None:
                detail = result.delivery.message if result.delivery else "no hub configured"
                raise RuntimeError(f"{country}: submission {sid} was not delivered: {detail}")
            say(f"  {country}: submission {sid} accepted, receipt verified "
                f"({time.monotonic() - started:.1f} s)")
    finally:
        stop_process(proc)
    say("[4/4] merging and writing the report")
    view, catalogues = load_period(load_hub_config(hub_config), year)
    report = build_report(view, catalogues, out / "report")
    export = export_csv(view, catalogues, out / "results.csv")
    opendata = export_jsonstat(view, catalogues, jsonstat_path(export))
    return DemoResult(report=report, export=export, jsonstat=opendata,
                      submissions=len(view.submissions))


def quiet_prefect() -> None:
    """Keep the demo's console readable: Prefect logs warnings only, to the console."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
