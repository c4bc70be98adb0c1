-- experiment_variants: each variant of each experiment in scope, with its sessions (test sessions
-- left out; a session without a duration still counts: it was assigned) for the sample-ratio
-- check. A variant is its experiment_variant_id; a session without one belongs to the variant
-- whose name it has, where one id has that name, else to its name alone. The control first,
-- then by name. Sessions with neither id nor name are counted in `unnamed_sessions` (of the
-- experiment's first row) and compared with nothing.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter)
-- and $experiment (null: every experiment).
with kept as (
    select
        experiment_id,
        experiment_variant_id,
        experiment_variant,
        experiment_variant_is_control,
        "timestamp"
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where not excluded and experiment_id is not null
        and ($experiment is null or experiment_id = $experiment)
),

named as (
    -- The id a name stands for, where exactly one id has that name.
    select experiment_id, experiment_variant, min(experiment_variant_id) as only_id
    from kept
    where experiment_variant_id is not null and experiment_variant is not null
    group by experiment_id, experiment_variant
    having count(distinct experiment_variant_id) = 1
),

keyed as (
    select
        kept.*,
        coalesce(kept.experiment_variant_id, named.only_id, kept.experiment_variant) as variant_key
    from kept
    left join named using (experiment_id, experiment_variant)
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
    from keyed
    where variant_key is not null
    group by experiment_id, variant_key
),

unnamed as (
    select experiment_id, count(*) as unnamed_sessions
    from keyed
    where variant_key is null
    group by experiment_id
)

select
    cast(row_number() over (order by experiment_id, not is_control, variant_name, variant_key) - 1
        as integer) as variant_no,
    variants.*,
    coalesce(unnamed.unnamed_sessions, 0) as unnamed_sessions
from variants
left join unnamed using (experiment_id)
order by variant_no
