-- agent_duration_stats: how long sessions take, one row per agent_id. agent_name is the most
-- recent name seen for the id. Every measure is defined in metrics.md.
create or replace macro agent_duration_stats_for(since, until, agent, channel, include_tests) as table
with scoped as (
    select * from sessions_in_scope(since, until, agent, channel, include_tests)
),

final as (
    select
        agent_id,
        arg_max(agent_name, "timestamp") filter (where agent_name is not null) as agent_name,
        count(*) filter (where not excluded) as session_count,
        count(kept_duration) as duration_count,
        sum(kept_duration) as duration_total_s,
        avg(kept_duration) as duration_mean_s,
        stddev_samp(kept_duration) as duration_stddev_s,
        min(kept_duration) as duration_min_s,
        quantile_cont(kept_duration, 0.5) as duration_p50_s,
        quantile_cont(kept_duration, 0.9) as duration_p90_s,
        quantile_cont(kept_duration, 0.95) as duration_p95_s,
        quantile_cont(kept_duration, 0.99) as duration_p99_s,
        max(kept_duration) as duration_max_s,
        count(*) filter (where kept_duration = 0) as zero_duration_count,
        avg(case when excluded then null when user_terminated then 1.0 when not user_terminated then 0.0 end)
            as user_terminated_share,
        avg(case when excluded then null when is_outbound then 1.0 when not is_outbound then 0.0 end)
            as outbound_share,
        count(*) filter (where not excluded and is_legacy) as legacy_session_count,
        count(*) filter (where excluded) as test_sessions_excluded,
        min("timestamp") filter (where not excluded) as first_session_at,
        max("timestamp") filter (where not excluded) as last_session_at
    from scoped
    group by agent_id
    having count(*) filter (where not excluded) > 0
)

select * from final
order by session_count desc, agent_id nulls last;

create or replace view agent_duration_stats as
select * from agent_duration_stats_for(null, null, null, null, false)
