"""The Spark engine (`--engine spark`): the same views as DuckDB's, transpiled
(`pipeline.views.dialects`), over the same version of the warehouse.

`session` starts Spark (or says how to install it), `source` gives it the version's tables,
`run` runs a breakdown or a query and hands the result to the usual output. pyspark is an
optional extra (`requirements-spark.lock`); nothing here imports it before it is needed.
"""
