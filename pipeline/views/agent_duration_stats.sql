-- agent_duration_stats: how long sessions take, one row per agent_id. agent_name is the most
-- recent name seen for the id. Every measure is defined in metrics.md.
create or replace macro agent_duration_stats_for(since, until, agent, channel, include_tests) as table
with scoped as (
    select * from sessions_in_scope(since, until, agent, channel, include_tests)
),

measured as (
    select
        agent_id,
        arg_max(agent_name, "timestamp") as agent_name,
        count(kept_timestamp) as session_count,
        count(kept_duration) as duration_count,
        sum(kept_duration) as duration_total_s,
        avg(kept_duration) as duration_mean_s,
        stddev_samp(kept_duration) as duration_stddev_s,
        min(kept_duration) as duration_min_s,
        -- One sort for all four percentiles, not one each; no FILTER clauses:
        -- a CASE inside the aggregate costs less.
        quantile_cont(kept_duration, [0.5, 0.9, 0.95, 0.99]) as duration_percentiles,
        max(kept_duration) as duration_max_s,
        count(case when kept_duration = 0 then 1 end) as zero_duration_count,
        avg(case when not excluded then user_terminated::double end) as user_terminated_share,
        avg(case when not excluded then is_outbound::double end) as outbound_share,
        count(case when not excluded and is_legacy then 1 end) as legacy_session_count,
        count(*) - count(kept_timestamp) as test_sessions_excluded,
        min(kept_timestamp) as first_session_at,
        max(kept_timestamp) as last_session_at
    from scoped
    group by agent_id
    having count(kept_timestamp) > 0
),

final as (
    select
        agent_id,
        agent_name,
        session_count,
        duration_count,
        duration_total_s,
        duration_mean_s,
        duration_stddev_s,
        duration_min_s,
        duration_percentiles[1] as duration_p50_s,
        duration_percentiles[2] as duration_p90_s,
        duration_percentiles[3] as duration_p95_s,
        duration_percentiles[4] as duration_p99_s,
        duration_max_s,
        zero_duration_count,
        user_terminated_share,
        outbound_share,
        legacy_session_count,
        test_sessions_excluded,
        first_session_at,
        last_session_at
    from measured
)

select * from final
order by session_count desc, agent_id nulls last;

create or replace view agent_duration_stats as
select * from agent_duration_stats_for(null, null, null, null, false)
