-- experiment_samples: the durations of each variant of `compare_variants` (made from
-- experiment_variants.sql), test sessions and null durations left out (samples.py sorts
-- them).
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
select v.variant_no, s.kept_duration as duration
from sessions_in_scope($since, $until, $agent, $channel, $include_tests) as s
join compare_variants as v
    on s.experiment_id = v.experiment_id
    and coalesce(s.experiment_variant_id, s.experiment_variant) = v.variant_key
where s.kept_duration is not null
