-- prompt_version_samples: the durations of each prompt version of `compare_versions` (the
-- versions that prompt_version_pairs.sql pairs, numbered), test sessions and null durations
-- left out, each session once (samples.py sorts them); with when each session began
-- (microseconds since 1970, UTC) where $with_time, for --window-days to cut around a switch.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter)
-- and $with_time.
select
    v.version_no,
    s.kept_duration as duration,
    case when $with_time then epoch_us(s."timestamp") end as at_us
from sessions_in_scope($since, $until, $agent, $channel, $include_tests) as s
join compare_versions as v
    on s.prompt_id = v.prompt_id and s.prompt_version_number = v.version
where s.kept_duration is not null
