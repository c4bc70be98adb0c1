-- prompt_version_pairs: each prompt version seen in scope, and the version before it of the same
-- prompt (by prompt_version_number): the pairs `sessions compare --by prompt-version` compares.
-- `switch_at` is the new version's first session (microseconds since 1970 in `switch_us`):
-- with a window, both sides are cut around it.
-- Parameters: the scope ($since, $until, $agent, $channel, $include_tests; null: no filter).
with kept as (
    select prompt_id, prompt_name, prompt_version_number, "timestamp"
    from sessions_in_scope($since, $until, $agent, $channel, $include_tests)
    where not excluded and prompt_id is not null and prompt_version_number is not null
),

names as (
    select prompt_id, arg_max(prompt_name, "timestamp") filter (where prompt_name is not null) as prompt_name
    from kept
    group by prompt_id
),

versions as (
    select prompt_id, prompt_version_number as version, min("timestamp") as first_at
    from kept
    group by prompt_id, prompt_version_number
),

pairs as (
    select
        prompt_id,
        lag(version) over (partition by prompt_id order by version) as baseline_version,
        version as candidate_version,
        first_at as switch_at
    from versions
)

select
    cast(row_number() over (order by pairs.prompt_id, candidate_version) - 1 as integer) as pair_no,
    pairs.prompt_id,
    names.prompt_name,
    baseline_version,
    candidate_version,
    switch_at,
    epoch_us(switch_at) as switch_us
from pairs
join names using (prompt_id)
where baseline_version is not null
order by pair_no
