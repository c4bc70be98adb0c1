-- rejects: the quarantine. Every row an ingest rejected, with where it came from, the record
-- as received, every reason (field, rule, value), and the run that rejected it.
create or replace view rejects as
with source as (
    select * from {{ rejects_parquet }}
),

final as (
    select
        ingested_at,
        source_file,
        line,
        element,
        item,
        position,
        reason,
        reasons,
        record,
        -- The ingest that rejected the row (the manifest lists it).
        run_id
    from source
)

select * from final
