"""dlt: Arrow batches (pyarrow's streaming reader, explicit schema) into local Parquet files
(the `filesystem` destination), `merge` on session_id asked for."""

from __future__ import annotations

import sys
from pathlib import Path

import dlt

sys.path.insert(0, str(Path(__file__).parent))
from arrow_batches import batches

source, out = sys.argv[1], Path(sys.argv[2])


@dlt.resource(name="sessions", primary_key="session_id", write_disposition="merge")
def sessions():  # type: ignore[no-untyped-def]
    yield from batches(source)


pipeline = dlt.pipeline(
    pipeline_name="bench_parquet",
    pipelines_dir=str(out / "pipelines"),
    destination=dlt.destinations.filesystem(str((out / "data").resolve())),
    dataset_name="bench",
)
info = pipeline.run(sessions(), loader_file_format="parquet")
info.raise_on_failed_jobs()
