"""Node configuration (``node.toml``): which country, which data, where results go.

Relative paths resolve against the folder of the configuration file, so a node folder can
be moved or copied as a whole.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 code, e.g. NO")
    year: int = Field(ge=1990, le=2100, description="Reporting year (calls received in it)")
    data: Path = Field(description="Input file: .parquet or .csv in the common model")
    key: Path = Field(description="Ed25519 private key (PEM) of this country")
    outbox: Path = Field(description="Folder where every signed submission is written")
    hub_url: str = Field("", description="Hub base URL; empty = write the outbox only")
    disclosure_threshold: int = Field(5, ge=1, description="Counts 1..threshold-1 never leave")
    specs: Path | None = Field(None, description="Spec folder; default the packaged specs")
    threads: int = Field(0, ge=0, description="DuckDB threads; 0 = all cores")

    @field_validator("hub_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("hub_url must start with http:// or https://")
        return v.rstrip("/")


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
    base = path.resolve().parent
    for key in ("data", "key", "outbox", "specs"):
        if section.get(key):
            section[key] = base / Path(section[key])
        elif key == "specs":
            section.pop(key, None)
    try:
        return NodeConfig.model_validate(section)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ValueError(f"invalid node config {path}:\n  " + "\n  ".join(lines)) from exc


def write_node_config(path: Path, cfg: NodeConfig) -> None:
    """Write a config file (used by the demo); paths are written as given."""
    lines = ["[node]"]
    for key, value in cfg.model_dump().items():
        if value is None:
            continue
        text = str(value) if not isinstance(value, int) else value
        lines.append(f"{key} = {text!r}" if isinstance(text, str) else f"{key} = {text}")
    path.write_text("\n".join(lines).replace("'", '"') + "\n", encoding="utf-8")
