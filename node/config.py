"""Node configuration (``node.toml``): which country, which data, where results go.

Relative paths resolve against the folder of the configuration file, so a node folder can
be moved or copied as a whole. The audit log and the working folder default to
``audit.jsonl`` and ``work`` beside the configuration file.

Besides ``[node]``, node.toml may hold ``[[schedule]]`` tables for ``emsbench node serve``
(``Schedule``): each has a ``name`` (the deployment is ``node-<COUNTRY>-<name>``), a
``cron`` of five fields, read in the node's time zone unless ``timezone`` says another, and
the ``year`` it computes: ``"current"`` or ``"previous"`` (the calendar year of the run in
the node's time zone, or the one before), a fixed year, or by default node.toml's own
``year``. A run for another year reads ``data`` with ``{year}`` replaced by that year
(``data = "exports/NO-{year}.csv"``; also in ``query``); every other key stays as written.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emsbench.conformance import SMALLEST_THRESHOLD
from emsbench.files import toml_string
from emsbench.kinds import Context
from emsbench.wire import DataSource

PATH_KEYS = ("data", "key", "outbox", "specs", "hub_key", "audit_log", "workdir", "spill",
             "release", "approvers", "reports", "password_file", "population")
DEFAULT_AUDIT_LOG = Path("audit.jsonl")
DEFAULT_WORKDIR = Path("work")
DEFAULT_REPORTS = Path("reports")
# The time zone a country's centres record local times in, when node.toml does not say.
COUNTRY_TIME_ZONES = {"NO": "Europe/Oslo", "SE": "Europe/Stockholm", "DK": "Europe/Copenhagen",
                      "FI": "Europe/Helsinki", "IS": "Atlantic/Reykjavik"}


YEAR_WORDS = ("current", "previous")
# The year a run computes: node.toml's (None), "current", "previous" or a given year.
YearChoice = int | Literal["current", "previous"] | None
SCHEDULE_NAME = r"[a-z0-9][a-z0-9-]{0,39}"



def checked_zone(v: str) -> str:
    """``v`` if empty or an IANA time zone name; else a clear error."""
    if v:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as "
                             "Europe/Oslo or America/Chicago") from None
    return v

class Schedule(BaseModel):
    """One ``[[schedule]]`` table: when ``emsbench node serve`` runs the node, and for which
    year (the flow's ``year`` parameter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Names the deployment node-<COUNTRY>-<name>, e.g. monthly")
    cron: str = Field(description="When: minute hour day-of-month month day-of-week, e.g. "
                      "'0 6 2 * *' (06:00 on the 2nd of every month)")
    year: YearChoice = Field(
        None, description="The year a run computes: 'current', 'previous' (in the node's "
        "time zone, when the run starts), a year, or by default node.toml's year")
    timezone: str = Field("", description="IANA time zone the cron is read in; default the "
                          "node's (Europe/Oslo for NO ...)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(SCHEDULE_NAME, v):
            raise ValueError(f"{v!r}: use 1 to 40 lower-case letters, digits and dashes, "
                             "starting with a letter or digit (it names the deployment)")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 and not (len(fields) == 1 and v.strip().startswith("@")):
            raise ValueError(f"{v!r} is not a cron expression of five fields (minute hour "
                             "day-of-month month day-of-week), e.g. '0 6 2 * *' for 06:00 on "
                             "the 2nd of every month")
        from prefect.schedules import Cron  # the rules the Prefect server schedules by

        try:
            Cron(" ".join(fields))
        except ValueError:
            raise ValueError(f"{v!r} is not a valid cron expression (minute 0-59, hour 0-23, "
                             "day 1-31, month 1-12 or jan-dec, day of week 0-6 or sun-sat)"
                             ) from None
        return " ".join(fields)

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, v: Any) -> Any:
        if v is None or v in YEAR_WORDS or (
                type(v) is int and 1990 <= v <= 2100):  # a bool is no year
            return v
        raise ValueError(f"{v!r}: use \"current\", \"previous\" or a year from 1990 to 2100")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return checked_zone(v)


def resolve_year(year: YearChoice | str, own: int, time_zone: str,
                 now: datetime | None = None) -> int:
    """The year a run computes: ``own`` (node.toml's) for None, the calendar year in
    ``time_zone`` for "current" and the one before for "previous", else ``year``."""
    if year is None:
        return own
    if year in YEAR_WORDS:
        today = (now or datetime.now(ZoneInfo(time_zone))).astimezone(ZoneInfo(time_zone))
        return today.year - (year == "previous")
    if type(year) is not int:  # a bool is no year
        raise ValueError(f"year {year!r}: use \"current\", \"previous\" or a year")
    return year


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 code, e.g. NO")
    year: int = Field(ge=1990, le=2100, description="Reporting year (calls received in it)")
    data: Path = Field(description="Input: a .parquet or .csv file in the common model, or "
                       "what 'format' reads (a folder of NEMSIS tables, a national export, "
                       "a postgresql:// URL)")
    format: str = Field("common", description="Input format, one of node.adapters.FORMATS: "
                        "common, nemsis, national-no, national-se, ...")
    key: Path = Field(description="Ed25519 private key (PEM) of this country")
    outbox: Path = Field(description="Folder where every signed submission is written")
    hub_url: str = Field("", description="Hub base URL; empty = write the outbox only")
    hub_key: Path | None = Field(None, description="The hub's public key (base64 .pub file); "
                                 "required with hub_url, it proves the hub's receipts")
    disclosure_threshold: int = Field(5, ge=SMALLEST_THRESHOLD,
                                      description="Counts 1..threshold-1 never leave")
    specs: Path | None = Field(None, description="Spec folder; default the packaged specs")
    release: Path | None = Field(None, description="The signed catalogue release (DSSE "
                                 "envelope) the specs must match; needs 'approvers'")
    approvers: Path | None = Field(None, description="The approvers file: their keys and how "
                                   "many must sign a release")
    threads: int = Field(0, ge=0, description="DuckDB threads; 0 = all cores")
    memory_limit: str = Field("512MB", pattern=r"^[0-9]+(\.[0-9]+)? ?([KMGT]i?B)$",
                              description="Most memory DuckDB may hold while validating and "
                              "computing (e.g. '512MB', '2GB'); past it, it spills to disk")
    spill: Path | None = Field(None, description="Folder DuckDB spills to past memory_limit "
                               "(default: inside workdir, removed after every run)")
    audit_log: Path = Field(DEFAULT_AUDIT_LOG, description="The node's hash-chained log")
    workdir: Path = Field(DEFAULT_WORKDIR, description="Scratch folder for the working "
                          "database (0700, emptied after every run)")
    review: bool = Field(True, description="Stop after signing until the operator has "
                         "reviewed the release preview and run `emsbench node approve`; "
                         "false: send at once (unattended runs)")
    max_rejected_share: float = Field(0.2, ge=0, le=1, description="Stop before signing when "
                                      "more than this share of the rows is rejected (a "
                                      "broken export, not a few bad rows)")
    reports: Path = Field(DEFAULT_REPORTS, description="Folder for what stays on the node: "
                          "the rejects file (row-level, 0600)")
    timezone: str = Field("", description="IANA time zone the centres record local times in; "
                          "times with a UTC offset are converted to it. Empty: the country's "
                          "(Europe/Oslo for NO ...), UTC elsewhere")
    encoding: str = Field("", description="Text encoding of a CSV input; empty = UTF-8 "
                          "(e.g. windows-1252 for an ANSI export)")
    table: str = Field("", description="format postgresql: the table or view to read, "
                       "e.g. registry.missions")
    query: str = Field("", description="format postgresql, instead of table: a SELECT "
                       "returning the rows")
    password_file: Path | None = Field(None, description="format postgresql: a file (mode "
                                       "0600) holding the password; default libpq's "
                                       "(PGPASSWORD, ~/.pgpass)")
    source_description: str = Field("", max_length=300, description="The register or "
                                    "system the data come from, in words for the report "
                                    "(e.g. 'Norwegian ambulance journal records, all "
                                    "health trusts'); sent with the figures")
    synthetic: bool = Field(False, description="The data are synthetic (made up): the hub "
                            "marks every page of its report and site as synthetic")
    population: Path | None = Field(None, description="The official population by age band "
                                    "and sex that rates divide by: a CSV in the reference "
                                    "format (country,year,region,age_band,sex,persons,source; "
                                    "the rows of this country, year and region 'national'); "
                                    "default the shipped reference data")
    schedules: tuple[Schedule, ...] = Field((), description="The [[schedule]] tables: when "
                                            "`emsbench node serve` runs the node")

    @model_validator(mode="before")
    @classmethod
    def _data_url(cls, values: Any) -> Any:
        # A URL is no path (pathlib folds its '//'), and the flow hands the input adapter
        # only 'data': a database input travels as a DatabaseURL, a Path that keeps the URL
        # as written and carries table, query and password_file.
        from node.adapters.postgres import DatabaseURL, is_url

        if not isinstance(values, dict):
            return values
        data = values.get("data")
        if isinstance(data, DatabaseURL):  # made in Python: its table, query, password file
            values = {"table": data.table, "query": data.query,
                      "password_file": data.password_file, **values}
            data = data.url
        if is_url(data):
            values = {**values, "data": DatabaseURL.of(
                data, table=str(values.get("table") or ""),
                query=str(values.get("query") or ""),
                password_file=values.get("password_file") or None)}
        return values

    def data_source(self) -> DataSource:
        """What the submission says its figures were computed from."""
        return DataSource(format=self.format, description=self.source_description,
                          synthetic=self.synthetic)

    @property
    def time_zone(self) -> str:
        return self.timezone or COUNTRY_TIME_ZONES.get(self.country, "UTC")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return checked_zone(v)

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        from node.adapters import FORMATS

        if v not in FORMATS:
            raise ValueError(f"unknown input format {v!r}; use one of {', '.join(FORMATS)}")
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        if v:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}; use e.g. utf-8, windows-1252, "
                                 "iso-8859-1 or utf-16") from None
        return v

    @field_validator("hub_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("hub_url must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _release_with_approvers(self) -> NodeConfig:
        if (self.release is None) != (self.approvers is None):
            raise ValueError("release and approvers go together: the release is checked "
                             "against the approvers' keys and threshold")
        return self

    @model_validator(mode="after")
    def _database_input(self) -> NodeConfig:
        from node.adapters.postgres import DatabaseURL, url_problems

        if self.format == "postgresql":
            if not isinstance(self.data, DatabaseURL):
                raise ValueError("format postgresql reads from a server: data must be a "
                                 "postgresql://user@host:port/database URL")
            problems = url_problems(self.data)
            if problems:
                raise ValueError("; ".join(problems))
        elif isinstance(self.data, DatabaseURL):
            raise ValueError(f"data is a URL: set format = \"postgresql\" to read a table "
                             f"from a PostgreSQL server (format is {self.format!r})")
        elif self.table or self.query or self.password_file:
            raise ValueError("table, query and password_file are for format = \"postgresql\"")
        return self

    @model_validator(mode="after")
    def _schedule_names(self) -> NodeConfig:
        names = [s.name for s in self.schedules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"more than one [[schedule]] is named {', '.join(twice)}: each "
                             f"needs its own name (it names the deployment node-"
                             f"{self.country}-<name>)")
        return self

    @model_validator(mode="after")
    def _hub_key_with_url(self) -> NodeConfig:
        # Without the hub's key a receipt proves nothing, so a node that sends must have it.
        if self.hub_url and self.hub_key is None:
            raise ValueError("hub_key is required when hub_url is set: ask the hub operator "
                             "for the hub's public key file (hub-key.pub) and give its path "
                             "as hub_key, so the node can verify the hub's receipts")
        return self


def load_node_config(path: Path, year: YearChoice = None) -> NodeConfig:
    """Read ``node.toml`` (section ``[node]``, tables ``[[schedule]]``); errors say which key
    is wrong. ``year`` ("current", "previous" or a year) overrides node.toml's own, and
    ``{year}`` in ``data`` and ``query`` is replaced by the year the config is for."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read node config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    section = raw.get("node")
    if not isinstance(section, dict):
        raise ValueError(f"{path} needs a [node] section")
    unknown = sorted(set(raw) - {"node", "schedule"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {', '.join(unknown)}; node.toml holds "
                         "[node] and [[schedule]] tables")
    if "schedule" in raw:
        schedules = raw["schedule"]
        if not isinstance(schedules, list) or not all(isinstance(s, dict) for s in schedules):
            raise ValueError(f"{path}: write each schedule as a [[schedule]] table")
        section["schedules"] = schedules
    from node.adapters.postgres import is_url

    base = path.resolve().parent
    section.setdefault("audit_log", str(DEFAULT_AUDIT_LOG))
    section.setdefault("workdir", str(DEFAULT_WORKDIR))
    section.setdefault("reports", str(DEFAULT_REPORTS))
    for key in PATH_KEYS:
        value = section.get(key)
        if key == "data" and is_url(value):
            continue  # a server's address, not a file beside this one
        if isinstance(value, str) and value:
            section[key] = base / Path(value)
        elif value == "" and key in ("specs", "hub_key", "password_file",
                                     "population"):  # TOML has no null
            section.pop(key)
    cfg = _validate(path, _for_year(section, section.get("year")))
    if year is None:
        return cfg
    return _validate(path, _for_year(section, resolve_year(year, cfg.year, cfg.time_zone)))


def _for_year(section: dict[str, Any], year: Any) -> dict[str, Any]:
    """The section for ``year``: that year, and ``{year}`` in data and query replaced."""
    if type(year) is not int:  # left for validation to report
        return section
    out = {**section, "year": year}
    for key in ("data", "query"):
        value = out.get(key)
        if isinstance(value, str | Path) and "{year}" in str(value):
            text = str(value).replace("{year}", str(year))
            out[key] = Path(text) if isinstance(value, Path) else text
    return out


def _validate(path: Path, section: dict[str, Any]) -> NodeConfig:
    try:
        return NodeConfig.model_validate(section)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = list(e["loc"])
            if loc[:1] == ["schedules"] and len(loc) > 1 and isinstance(loc[1], int):
                # "schedule 2 (annual): cron: ..." rather than "schedules.1.cron: ..."
                entry = section["schedules"][loc[1]]
                name = entry.get("name") if isinstance(entry, dict) else None
                head = f"schedule {loc[1] + 1}" + (f" ({name})" if name else "")
                where = " ".join([head, ".".join(map(str, loc[2:]))]).strip()
            else:
                where = ".".join(map(str, loc))
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}" if where else msg)
        raise ValueError(f"invalid node config {path}:\n  " + "\n  ".join(lines)) from exc


def node_population(cfg: NodeConfig) -> dict[tuple[str, str], int]:
    """The node's official population by (age band, sex), which rates divide by: from the
    file of node.toml key ``population`` when set, else the shipped reference data of the
    node's country and year. ValueError naming the key when neither has it."""
    from emsbench.reference import ReferenceDataError, load_population, population_by

    if cfg.population is not None:
        try:
            return population_by(cfg.country, cfg.year, rows=load_population(cfg.population))
        except ReferenceDataError as exc:
            raise ValueError(f"population: {exc}") from exc
        except KeyError as exc:
            raise ValueError(f"population: {cfg.population} has {exc.args[0]}") from exc
    try:
        return population_by(cfg.country, cfg.year)
    except KeyError as exc:
        raise ValueError(
            f"no official population for {cfg.country} {cfg.year}, which the rate indicators "
            f"divide by: node.toml key 'population' is not set and the shipped reference "
            f"data has {exc.args[0]}. Set population = \"FILE.csv\" in node.toml, a CSV of "
            "the country's official figures in the reference format (country,year,region,"
            "age_band,sex,persons,source; region national)") from exc


def node_context(cfg: NodeConfig) -> Context:
    """What the node knows besides its rows: country, year and official population."""
    return Context(country=cfg.country, year=cfg.year, population=node_population(cfg))


def _toml_value(value: object) -> str:
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return toml_string(str(value))


def write_node_config(path: Path, cfg: NodeConfig) -> None:
    """Write a config file (used by the demo); paths are written as given."""
    lines = ["[node]"]
    for key, value in cfg.model_dump().items():
        if value is not None and key != "schedules":
            lines.append(f"{key} = {_toml_value(value)}")
    for schedule in cfg.schedules:
        lines += ["", "[[schedule]]"] + [f"{key} = {_toml_value(value)}" for key, value
                                         in schedule.model_dump().items() if value != ""
                                         and value is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
