"""DuckDB's memory limit for Feast's embedded offline store, set through ibis's public backend door.

Feast's DuckDB offline store runs its queries on ibis's default backend (`ibis.read_parquet`), an
in-memory DuckDB that may use 80% of the machine and keeps its spill files in the working directory.
Unbounded, materializing a table raised the process's peak far more than with a small limit, and the
gap grew with the table (docs/design-figures.md, "Why the settings"). With the limit DuckDB sorts out
of core, so the newest-row query and the point-in-time join stay bounded whatever the history holds.
"""

from __future__ import annotations

from pathlib import Path

from mlfleet.config import Settings, feast_offline_store

_configured: tuple[str, str] | None = None


def bound_duckdb(settings: Settings) -> None:
    """Make ibis's default backend a DuckDB with the configured memory limit and spill directory.

    Once per process and setting; a no-op where training sets go through another offline store."""
    global _configured
    if feast_offline_store(settings) != "duckdb":
        return
    spill = Path(settings.home_dir) / "duckdb-spill"
    wanted = (settings.duckdb_memory_limit, str(spill))
    if _configured == wanted:
        return
    import duckdb
    import ibis

    spill.mkdir(parents=True, exist_ok=True)
    try:
        backend = ibis.duckdb.connect(memory_limit=settings.duckdb_memory_limit, temp_directory=str(spill))
    except duckdb.Error as error:
        raise ValueError(f"MLFLEET_DUCKDB_MEMORY_LIMIT: {settings.duckdb_memory_limit!r} is not a DuckDB memory "
                         f"limit (give a size such as 1GB or 512MB): {error}") from None
    ibis.set_backend(backend)
    _configured = wanted
