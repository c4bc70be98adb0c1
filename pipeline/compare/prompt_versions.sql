-- prompt_versions: the versions `compare_pairs` (prompt_version_pairs.sql) compares, each once,
-- numbered in order: what prompt_version_samples.sql reads.
select
    cast(row_number() over (order by prompt_id, version) - 1 as integer) as version_no,
    prompt_id,
    version
from (
    select prompt_id, baseline_version as version from compare_pairs
    union
    select prompt_id, candidate_version as version from compare_pairs
)
