-- experiment_samples: the durations of each variant of `compare_variants` (made from
-- experiment_variants.sql, whose variant_key a session is matched on the same way), test
-- sessions and null durations left out (samples.py sorts them).
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
with kept as (
    select experiment_id, experiment_variant_id, experiment_variant, kept_duration
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where kept_duration is not null and experiment_id is not null
)

select v.variant_no, kept.kept_duration as duration
from kept
left join compare_variant_names as names using (experiment_id, experiment_variant)
join compare_variants as v
    on kept.experiment_id = v.experiment_id
    and variant_key(
        kept.experiment_variant_id, kept.experiment_variant, names.only_id, names.shared
    ) = v.variant_key
