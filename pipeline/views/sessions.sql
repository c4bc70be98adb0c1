-- sessions: one row per current session, typed, with the dimensions people group by.
-- Local times are in the agent's timezone; where that is missing or not a name in the list
-- of timezones every engine knows (timezones.txt), UTC.
-- local_date is stored (the ingest derives it by this same rule), the others are computed.
create or replace view sessions as
with source as (
    select * from {{ sessions_parquet }}
),

localised as (
    select
        source.*,
        -- The partition (the files' `date=` folder): the date the session started, in UTC.
        cast(timezone('UTC', source."timestamp") as date) as utc_date,
        -- The timezones every engine knows (pipeline/views/timezones.txt), as a list of
        -- literals: a lookup rather than a join, so that a query without local times does
        -- not pay it.
        case
            when agent_timezone in ({{ known_timezones }}) then agent_timezone
            else 'UTC'
        end as local_timezone
    from source
),

final as (
    select
        *,
        timezone(local_timezone, "timestamp") as local_time,
        hour(timezone(local_timezone, "timestamp")) as local_hour,
        dayname(timezone(local_timezone, "timestamp")) as local_weekday,
        cast(date_trunc('week', timezone(local_timezone, "timestamp")) as date) as local_week_start,
        coalesce(is_test, false) as is_test_session,
        duration is not null as has_duration
    from localised
)

select * from final
