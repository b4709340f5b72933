"""emsbench hub: receives signed aggregate submissions from national nodes.

``hub.config`` reads the hub's TOML config, ``hub.trust`` the registry of trusted node
keys, ``hub.store`` keeps submissions and the audit trail in DuckDB, ``hub.api`` is the
FastAPI app that checks and stores submissions, and ``hub.server`` runs it with uvicorn.
"""
