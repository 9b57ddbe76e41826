"""The generated dagster.yaml gives the dbt pool the limit the README promises."""

import dagster as dg
import yaml

from streamflow_dagster.platform.instance import render_dagster_yaml


def test_generated_instance_serialises_dbt_builds(tmp_path):
    (tmp_path / "dagster.yaml").write_text(
        render_dagster_yaml("postgresql://u@h/dagster", secret=True)
    )
    config = yaml.safe_load((tmp_path / "dagster.yaml").read_text())["concurrency"]
    # dbt_warehouse has no limit of its own in the file: the default pool limit is its limit
    # (platform/instance.py also stores it by name so the UI shows it).
    assert config["pools"]["default_limit"] == 1
    assert config["runs"]["max_concurrent_runs"] == 2
    # Dagster reads the same file as the concurrency config it enforces.
    with dg.instance_for_test(overrides={"concurrency": config}) as instance:
        settings = instance.get_concurrency_config()
    assert settings.pool_config.default_pool_limit == 1
    assert settings.run_queue_config.max_concurrent_runs == 2
