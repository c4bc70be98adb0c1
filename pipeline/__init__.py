"""sessions analytics: ingest Syllable session exports into Parquet and query them with DuckDB."""

__version__ = "0.1.0"
