-- prompt_version_changes: did a new prompt version make sessions shorter? One row per prompt
-- version, with its median and p90 duration, the change from the previous version of the
-- same prompt, and the sessions behind both, so that a small sample is not over-read.
-- "Previous" is by prompt_version_number, as `sessions compare` pairs them: the highest
-- lower number of the same prompt, its figures pooled over the `prompt_version` texts it
-- was exported with (a number exported under two texts is two rows here, each compared with
-- the number before, never with each other). A row without a number, or without a
-- prompt_id, has no previous version.
create or replace macro prompt_version_changes_for(since, until, agent, channel, include_tests) as table
with versions as (
    select * from prompt_version_duration_stats_for(since, until, agent, channel, include_tests)
),

numbers as (
    select
        prompt_id,
        prompt_version_number,
        count(kept_duration) as duration_count,
        quantile_cont(kept_duration, [0.5, 0.9]) as duration_percentiles
    from sessions_in_scope(since, until, agent, channel, include_tests)
    where prompt_id is not null and prompt_version_number is not null
    group by prompt_id, prompt_version_number
    having count(kept_timestamp) > 0
),

previous as (
    select
        prompt_id,
        prompt_version_number,
        lag(prompt_version_number) over by_number as previous_version_number,
        lag(duration_count) over by_number as previous_duration_count,
        lag(duration_percentiles[1]) over by_number as previous_p50_s,
        lag(duration_percentiles[2]) over by_number as previous_p90_s
    from numbers
    window by_number as (partition by prompt_id order by prompt_version_number)
),

final as (
    select
        versions.prompt_id,
        versions.prompt_name,
        versions.prompt_version_number,
        versions.prompt_version,
        versions.session_count,
        versions.duration_count,
        versions.duration_p50_s,
        versions.duration_p90_s,
        previous.previous_version_number,
        previous.previous_duration_count,
        versions.duration_p50_s - previous.previous_p50_s as duration_p50_change_s,
        versions.duration_p90_s - previous.previous_p90_s as duration_p90_change_s,
        -- No share of a zero median: null, not infinity.
        versions.duration_p50_s / nullif(previous.previous_p50_s, 0) - 1
            as duration_p50_change_share,
        versions.first_session_at,
        versions.last_session_at
    from versions
    left join previous
        on previous.prompt_id = versions.prompt_id
        and previous.prompt_version_number = versions.prompt_version_number
)

select * from final
order by prompt_id nulls last, prompt_version_number nulls last, prompt_version nulls last;

create or replace view prompt_version_changes as
select * from prompt_version_changes_for(null, null, null, null, false)
