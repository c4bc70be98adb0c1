-- prompt_version_changes: did a new prompt version make sessions shorter? One row per prompt
-- version, with its median and p90 duration, the change from the previous version of the
-- same prompt, and the sessions behind both, so that a small sample is not over-read.
create or replace macro prompt_version_changes_for(since, until, agent, channel, include_tests) as table
with versions as (
    select * from prompt_version_duration_stats_for(since, until, agent, channel, include_tests)
),

final as (
    select
        prompt_id,
        prompt_name,
        prompt_version_number,
        prompt_version,
        session_count,
        duration_count,
        duration_p50_s,
        duration_p90_s,
        lag(prompt_version_number) over by_version as previous_version_number,
        lag(duration_count) over by_version as previous_duration_count,
        duration_p50_s - lag(duration_p50_s) over by_version as duration_p50_change_s,
        duration_p90_s - lag(duration_p90_s) over by_version as duration_p90_change_s,
        -- No share of a zero median: null, not infinity.
        duration_p50_s / nullif(lag(duration_p50_s) over by_version, 0) - 1
            as duration_p50_change_share,
        first_session_at,
        last_session_at
    from versions
    window by_version as (
        partition by prompt_id order by prompt_version_number, prompt_version, first_session_at
    )
)

select * from final
order by prompt_id nulls last, prompt_version_number nulls last, prompt_version nulls last;

create or replace view prompt_version_changes as
select * from prompt_version_changes_for(null, null, null, null, false)
