-- experiment_variants: each variant of each experiment in scope, with its sessions (test sessions
-- left out; a session without a duration still counts: it was assigned) for the sample-ratio
-- check. A variant is its experiment_variant_id; a session without one belongs to the variant
-- whose name it has, where one id has that name, or to its name alone, where no id has it
-- (experiment_names.sql). The control first, then by name. Sessions with neither id nor name
-- are counted in `unnamed_sessions`, those whose name several ids share in
-- `ambiguous_sessions` (of each of the experiment's rows); both are compared with nothing.
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

keyed as (
    select
        kept.*,
        coalesce(names.shared, false) and kept.experiment_variant_id is null as ambiguous,
        variant_key(
            kept.experiment_variant_id, kept.experiment_variant, names.only_id, names.shared
        ) as variant_key
    from kept
    left join compare_variant_names as names using (experiment_id, experiment_variant)
),

variants as (
    select
        experiment_id,
        variant_key,
        coalesce(
            arg_max(experiment_variant, "timestamp") filter (where experiment_variant is not null),
            substr(variant_key, strpos(variant_key, ':') + 1)
        ) as variant_name,
        coalesce(bool_or(experiment_variant_is_control), false) as is_control,
        count(*) as session_count
    from keyed
    where variant_key is not null
    group by experiment_id, variant_key
),

unnamed as (
    select
        experiment_id,
        count(*) filter (where not ambiguous) as unnamed_sessions,
        count(*) filter (where ambiguous) as ambiguous_sessions
    from keyed
    where variant_key is null
    group by experiment_id
)

select
    cast(row_number() over (order by experiment_id, not is_control, variant_name, variant_key) - 1
        as integer) as variant_no,
    variants.*,
    coalesce(unnamed.unnamed_sessions, 0) as unnamed_sessions,
    coalesce(unnamed.ambiguous_sessions, 0) as ambiguous_sessions
from variants
left join unnamed using (experiment_id)
order by variant_no
