-- variant_key: the variant a session belongs to (experiment_variants.sql and
-- experiment_samples.sql place sessions with it alike): its experiment_variant_id; without
-- one, the id its name stands for (`only_id` of experiment_names.sql) or, where no id has the
-- name, the name itself; null where several ids share the name (`shared`) or it has no name.
-- Ids and names are kept apart ('id:' and 'name:'): a variant named as another's id is not it.
create or replace temp macro variant_key(variant_id, variant_name, only_id, shared) as
    case
        when variant_id is not null then 'id:' || variant_id
        when not coalesce(shared, false) then coalesce('id:' || only_id, 'name:' || variant_name)
    end
