"""The generated dagster.yaml gives the dbt pool the limit the README promises."""

import dagster as dg

from streamflow_dagster.platform.instance import init_instance


def test_generated_instance_serialises_dbt_builds(tmp_path):
    init_instance(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
    # dbt_warehouse has no limit of its own: the default pool limit is its limit.
    assert config.pool_config.default_pool_limit == 1
    assert config.run_queue_config.max_concurrent_runs == 2
