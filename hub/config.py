"""Hub configuration: one TOML file with a ``[hub]`` table, validated by pydantic.

Example::

    [hub]
    host = "127.0.0.1"
    port = 8750
    database = "hub.duckdb"        # relative paths resolve against the config file's folder
    trust_registry = "trust.toml"
    specs = ""                     # optional spec directory; empty = packaged indicator_specs
    earlier_specs = []             # spec folders of earlier catalogue releases still accepted
    max_body_bytes = 5000000
    key = "hub-key.pem"            # the hub's receipt-signing key; made on first start
    max_concurrent = 32            # submissions checked at once; more get 503 + Retry-After
    public = ""                    # the published site, served under /public/ (written by
                                   # `emsbench hub publish`); empty = public/ beside the database

    [policy]                       # the federation's intake rules (all optional)
    min_disclosure_threshold = 5   # never below 3
    first_year = 2000
    last_year = 0                  # 0: the current year
    max_count = 1000000000
    max_clock_skew_seconds = 300
    max_age_days = 1098

Relative paths are resolved against the folder of the config file, not the working
directory, so the hub behaves the same whichever directory it is started from. Every
problem is reported as a ``ValueError`` that names the offending key (``hub.port``), so an
operator can fix the file without reading a traceback.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emsbench.conformance import SMALLEST_THRESHOLD, Policy
from emsbench.files import toml_string
from hub.catalogues import Catalogues

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
# A submission is bounded by the specs (strata × bins), not by row counts; 5 MB leaves
# generous room while stopping a runaway or hostile body early.
DEFAULT_MAX_BODY_BYTES = 5_000_000


class PolicyConfig(BaseModel):
    """The ``[policy]`` table: federation intake rules, turned into ``conformance.Policy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_disclosure_threshold: int = Field(default=5, ge=SMALLEST_THRESHOLD)
    first_year: int = Field(default=2000, ge=1900, le=2999)
    last_year: int = Field(default=0, ge=0, le=2999, description="0 = the current year")
    max_count: int = Field(default=1_000_000_000, ge=1)
    max_clock_skew_seconds: int = Field(default=300, ge=0)
    max_age_days: int = Field(default=3 * 366, ge=1)

    def policy(self) -> Policy:
        return Policy(min_disclosure_threshold=self.min_disclosure_threshold,
                      max_count=self.max_count, first_year=self.first_year,
                      last_year=self.last_year or None,
                      max_clock_skew=timedelta(seconds=self.max_clock_skew_seconds),
                      max_age=timedelta(days=self.max_age_days))


class HubConfig(BaseModel):
    """Validated hub settings. Paths are absolute once loaded by ``load_hub_config``."""

    # extra="forbid": a misspelt key ("trust_regsitry") must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default=DEFAULT_HOST, min_length=1)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    database: Path
    trust_registry: Path
    specs: Path | None = Field(
        default=None, description="Indicator spec directory; None = the packaged indicator_specs")
    earlier_specs: list[Path] = Field(
        default_factory=list, description="Spec folders of earlier catalogue releases the hub "
        "still accepts, so nodes need not upgrade in lock-step")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    key: Path | None = Field(default=None, description="Receipt-signing key (PEM); None = "
                             "hub-key.pem beside the database. Made on first start")
    max_concurrent: int = Field(default=32, ge=1, description="Submissions checked at once; "
                                "more are answered 503 with Retry-After")
    public: Path | None = Field(default=None, description="The published site's folder, "
                                "served read-only under /public/; None = public beside the "
                                "database")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)

    @property
    def key_path(self) -> Path:
        return self.key or self.database.parent / "hub-key.pem"

    @property
    def public_dir(self) -> Path:
        """Where ``hub publish`` writes the site and the hub serves it from."""
        return self.public or self.database.parent / "public"

    @property
    def token_path(self) -> Path:
        """Where the running hub writes the token its own CLI uses to read through it."""
        return self.database.with_name(self.database.name + ".token")

    @field_validator("specs", "key", "public", mode="before")
    @classmethod
    def _empty_specs_is_default(cls, value: Any) -> Any:
        # TOML has no null, so the file spells "use the packaged specs" as an empty string.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database", "trust_registry", mode="before")
    @classmethod
    def _path_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a non-empty path")
        return value

    def catalogues(self) -> Catalogues:
        """The catalogue releases this hub accepts; ValueError (or SpecError) if a folder
        is invalid or two folders disagree on a released version."""
        return Catalogues.load(self.specs, self.earlier_specs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else (base / value).resolve()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(table)"
        key = key if key.startswith("policy.") else f"hub.{key}"
        if err["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown key")
        elif err["type"] == "missing":
            parts.append(f"{key}: required key is missing")
        else:
            parts.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def hub_config_from_mapping(data: dict[str, Any], base: Path) -> HubConfig:
    """Validate the ``[hub]`` table and resolve its relative paths against ``base``."""
    try:
        cfg = HubConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"invalid hub configuration: {_describe(exc)}") from exc
    return cfg.model_copy(update={
        "database": _resolve(base, cfg.database),
        "trust_registry": _resolve(base, cfg.trust_registry),
        "specs": _resolve(base, cfg.specs),
        "earlier_specs": [_resolve(base, p) for p in cfg.earlier_specs],
        "key": _resolve(base, cfg.key),
        "public": _resolve(base, cfg.public),
    })


def load_hub_config(path: Path | str) -> HubConfig:
    """Read and validate a hub config file; raise ValueError naming the wrong key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"hub config file {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read hub config file {path}: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    table = doc.get("hub")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: missing the [hub] table")
    others = sorted(set(doc) - {"hub", "policy"})
    if others:
        raise ValueError(f"{path}: unknown top-level key(s) {others}; settings go under [hub] "
                         "and [policy]")
    if "policy" in doc:
        if "policy" in table:
            raise ValueError(f"{path}: give the policy as a [policy] table, not hub.policy")
        table = {**table, "policy": doc["policy"]}
    try:
        return hub_config_from_mapping(table, path.parent.resolve())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def write_hub_config(path: Path, cfg: HubConfig) -> None:
    """Write ``cfg`` as a hub config file (used by demos and tests)."""
    def q(value: object) -> str:
        return toml_string(str(value))

    lines = [
        "[hub]",
        f"host = {q(cfg.host)}",
        f"port = {cfg.port}",
        f"database = {q(cfg.database)}",
        f"trust_registry = {q(cfg.trust_registry)}",
        f"specs = {q(cfg.specs or '')}",
        f"earlier_specs = [{', '.join(q(p) for p in cfg.earlier_specs)}]",
        f"max_body_bytes = {cfg.max_body_bytes}",
        f"key = {q(cfg.key or '')}",
        f"max_concurrent = {cfg.max_concurrent}",
        f"public = {q(cfg.public or '')}",
        "",
        "[policy]",
        *(f"{k} = {v}" for k, v in cfg.policy.model_dump().items()),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
