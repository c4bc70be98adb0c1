-- rejects: the quarantine. Every row an ingest rejected, with where it came from, the record
-- as received and every reason (field, rule, value).
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
        record
    from source
)

select * from final
