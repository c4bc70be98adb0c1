-- sessions_in_scope(since, until, agent, channel, include_tests): the sessions a statistic
-- covers, with the test sessions it leaves out marked `excluded` (their duration and start are
-- not in `kept_duration` and `kept_timestamp`), so that a statistic can count them. A null
-- argument does not filter.
-- `since` and `until` are inclusive dates in the agent's timezone; `channel` matches
-- channel_manager_type.
create or replace macro sessions_in_scope(since, until, agent, channel, include_tests) as table
with filtered as (
    select *
    from sessions
    where (since is null or local_date >= cast(since as date))
        and (until is null or local_date <= cast(until as date))
        and (agent is null or agent_id = agent)
        and (channel is null or channel_manager_type = channel)
),

final as (
    select
        *,
        is_test_session and not include_tests as excluded,
        case when not (is_test_session and not include_tests) then duration end as kept_duration,
        case when not (is_test_session and not include_tests) then "timestamp" end as kept_timestamp
    from filtered
)

select * from final
