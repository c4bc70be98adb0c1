-- experiment_samples: the durations of each variant of `compare_variants` (made from
-- experiment_variants.sql, whose variant_key a session is matched on the same way), test
-- sessions and null durations left out (samples.py sorts them).
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
with kept as (
    select experiment_id, experiment_variant_id, experiment_variant, kept_duration
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where kept_duration is not null and experiment_id is not null
),

named as (
    select experiment_id, experiment_variant, min(experiment_variant_id) as only_id
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where not excluded and experiment_id is not null
        and experiment_variant_id is not null and experiment_variant is not null
    group by experiment_id, experiment_variant
    having count(distinct experiment_variant_id) = 1
)

select v.variant_no, kept.kept_duration as duration
from kept
left join named using (experiment_id, experiment_variant)
join compare_variants as v
    on kept.experiment_id = v.experiment_id
    and coalesce(kept.experiment_variant_id, named.only_id, kept.experiment_variant) = v.variant_key
