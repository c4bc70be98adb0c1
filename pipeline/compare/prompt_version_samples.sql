-- prompt_version_samples: the durations on each side of each pair of `compare_pairs` (made from
-- prompt_version_pairs.sql), test sessions and null durations left out. With $window_days, the
-- baseline side keeps the N days before the switch and the candidate side the N days from it.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests) and $window_days (null: no filter).
with kept as (
    select prompt_id, prompt_version_number, "timestamp", kept_duration as duration
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where kept_duration is not null and prompt_id is not null
),

baseline as (
    select pair_no, false as is_candidate, duration
    from kept
    join compare_pairs as p
        on kept.prompt_id = p.prompt_id and kept.prompt_version_number = p.baseline_version
    where $window_days is null
        or ("timestamp" >= p.switch_at - to_days(cast($window_days as integer))
            and "timestamp" < p.switch_at)
),

candidate as (
    select pair_no, true as is_candidate, duration
    from kept
    join compare_pairs as p
        on kept.prompt_id = p.prompt_id and kept.prompt_version_number = p.candidate_version
    where $window_days is null
        or ("timestamp" >= p.switch_at
            and "timestamp" < p.switch_at + to_days(cast($window_days as integer)))
)

select * from baseline
union all
select * from candidate
order by pair_no, is_candidate
