-- experiment_names: what a variant's name stands for in each experiment, for a session that
-- has the name and no experiment_variant_id: `only_id`, the id of the one variant with that
-- name; or, where several ids share it, `shared` (such a session cannot be placed). A name no
-- id has is not here: it is a variant of its own. What experiment_variants.sql and
-- experiment_samples.sql match sessions with, so that both place a session alike.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
select
    experiment_id,
    experiment_variant,
    case when count(distinct experiment_variant_id) = 1 then min(experiment_variant_id) end
        as only_id,
    count(distinct experiment_variant_id) > 1 as shared
from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
where not excluded and experiment_id is not null
    and experiment_variant_id is not null and experiment_variant is not null
group by experiment_id, experiment_variant
