-- experiments_in_scope: each experiment with sessions in scope (test sessions left out), and
-- how many: so that one none of whose sessions can be placed in a variant is said, not
-- silently absent from experiment_variants.sql.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter)
-- and $experiment (null: every experiment).
select experiment_id, count(*) as session_count
from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
where not excluded and experiment_id is not null
    and ($experiment is null or experiment_id = $experiment)
group by experiment_id
order by experiment_id
