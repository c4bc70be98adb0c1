"""The warehouse: two Delta Lake tables and what keeps them whole.

Layout of `<warehouse>/` (a local folder, or `s3://bucket/prefix`):

    sessions/              Delta table, partitioned by the UTC date: `date=YYYY-MM-DD/*.parquet`
    rejects/               Delta table: the quarantine, every rejected row with its run_id
    manifests/<run>.json   what each ingest read (SHA-256, counts); the sessions commit names it
    sessions.duckdb        DuckDB views over the current version's files (local warehouses)
    .sessions-warehouse    what the folder is, and its format version
    .lock                  the ingest lock (local warehouses)
    .staging/<run>/        a running ingest's work; never read by anyone else

An ingest is one commit to `sessions` (after one to `rejects`, whose rows count only once
the sessions commit names their run): readers see a whole ingest or none of it.

Modules, in the order data goes through them: `location` (where the warehouse is, and
whether it is one), `lock`, `tables` (the Delta tables, versions and commits), `merge` (the
rows an ingest changes), `files` (new files into the tables), `database` (sessions.duckdb),
`maintain` (vacuum, optimize), `migrate` (the snapshot layout before Delta).
"""
