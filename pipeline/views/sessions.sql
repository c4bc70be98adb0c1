-- sessions: one row per current session, typed, with the dimensions people group by.
-- Local times are in the agent's timezone; where that is missing or not an IANA name, UTC.
create or replace view sessions as
with source as (
    select * from {{ sessions_parquet }}
),

timezones as (
    select name from pg_timezone_names()
),

localised as (
    select
        source.* exclude ("date"),
        cast(source."date" as date) as utc_date,
        coalesce(timezones.name, 'UTC') as local_timezone
    from source
    left join timezones on timezones.name = source.agent_timezone
),

final as (
    select
        *,
        timezone(local_timezone, "timestamp") as local_time,
        cast(timezone(local_timezone, "timestamp") as date) as local_date,
        hour(timezone(local_timezone, "timestamp")) as local_hour,
        dayname(timezone(local_timezone, "timestamp")) as local_weekday,
        cast(date_trunc('week', timezone(local_timezone, "timestamp")) as date) as local_week_start,
        coalesce(is_test, false) as is_test_session,
        duration is not null as has_duration
    from localised
)

select * from final
