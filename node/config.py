"""Node configuration (``node.toml``): which country, which data, where results go.

Relative paths resolve against the folder of the configuration file, so a node folder can
be moved or copied as a whole. The audit log and the working folder default to
``audit.jsonl`` and ``work`` beside the configuration file.
"""

from __future__ import annotations

import codecs
import tomllib
from pathlib import Path
from typing import Any
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

PATH_KEYS = ("data", "key", "outbox", "specs", "hub_key", "audit_log", "workdir", "release",
             "approvers", "reports", "password_file", "population")
DEFAULT_AUDIT_LOG = Path("audit.jsonl")
DEFAULT_WORKDIR = Path("work")
DEFAULT_REPORTS = Path("reports")
# The time zone a country's centres record local times in, when node.toml does not say.
COUNTRY_TIME_ZONES = {"NO": "Europe/Oslo", "SE": "Europe/Stockholm", "DK": "Europe/Copenhagen",
                      "FI": "Europe/Helsinki", "IS": "Atlantic/Reykjavik"}


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
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}; use an IANA name such as "
                                 "Europe/Oslo or America/Chicago") from None
        return v

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
    def _hub_key_with_url(self) -> NodeConfig:
        # Without the hub's key a receipt proves nothing, so a node that sends must have it.
        if self.hub_url and self.hub_key is None:
            raise ValueError("hub_key is required when hub_url is set: ask the hub operator "
                             "for the hub's public key file (hub-key.pub) and give its path "
                             "as hub_key, so the node can verify the hub's receipts")
        return self


def load_node_config(path: Path) -> NodeConfig:
    """Read ``node.toml`` (section ``[node]``); errors say which key is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read node config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    section = raw.get("node")
    if not isinstance(section, dict):
        raise ValueError(f"{path} needs a [node] section")
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
    try:
        return NodeConfig.model_validate(section)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            where = ".".join(map(str, e["loc"]))
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
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
