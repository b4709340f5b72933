"""Run the hub: load its config, build the app and serve it with uvicorn.

The CLI (``emsbench hub serve``) calls ``serve``. Building the app before uvicorn starts
means a broken trust registry, spec directory or database path stops the process with a
clear message instead of a server that answers every request with an error.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import uvicorn

from hub.api import create_app
from hub.config import HubConfig, load_hub_config


def describe(config: HubConfig) -> str:
    """A short start-up banner: where the hub listens and what it reads and writes."""
    specs = config.specs if config.specs is not None else "packaged indicator_specs"
    return (f"emsbench hub listening on {config.url}\n"
            f"  submissions: POST {config.url}/v1/submissions\n"
            f"  database:    {config.database}\n"
            f"  trust:       {config.trust_registry}\n"
            f"  specs:       {specs}\n"
            f"  public site: {config.url}/public/ (from {config.public_dir}; "
            "`emsbench hub publish` writes it)\n")


def serve(config_path: Path) -> None:
    """Serve the hub described by ``config_path`` until interrupted (Ctrl-C)."""
    config = load_hub_config(config_path)
    app = create_app(config)
    sys.stdout.write(describe(config))
    sys.stdout.flush()
    # What start-up built (modules, app, specs, keys) lives as long as the process: out of
    # the collector's way, a full collection only walks what requests made since.
    gc.collect()
    gc.freeze()
    # A thread waiting for the GIL (a request back from DuckDB) gets it within 1 ms, not
    # 5: a long read encoding records for the CLI delays a post by tens of ms, not a
    # hundred (tests/hub/test_contention.py).
    sys.setswitchinterval(0.001)
    # One worker process: the DuckDB file admits one writing process, and the store
    # serialises writes inside it.
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
