-- experiment_variants: each variant of each experiment in scope, with its sessions (test sessions
-- left out; a session without a duration still counts: it was assigned) for the sample-ratio
-- check. A variant is its experiment_variant_id (its name where the id is missing); the control
-- first, then by name. Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
with kept as (
    select
        experiment_id,
        coalesce(experiment_variant_id, experiment_variant) as variant_key,
        experiment_variant,
        experiment_variant_is_control,
        "timestamp"
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where not excluded and experiment_id is not null
        and coalesce(experiment_variant_id, experiment_variant) is not null
),

variants as (
    select
        experiment_id,
        variant_key,
        coalesce(
            arg_max(experiment_variant, "timestamp") filter (where experiment_variant is not null),
            variant_key
        ) as variant_name,
        coalesce(bool_or(experiment_variant_is_control), false) as is_control,
        count(*) as session_count
    from kept
    group by experiment_id, variant_key
)

select
    cast(row_number() over (order by experiment_id, not is_control, variant_name, variant_key) - 1
        as integer) as variant_no,
    *
from variants
order by variant_no
