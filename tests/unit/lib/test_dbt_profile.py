"""The per-invocation dbt profile: the repository's profiles.yml with the connection filled in."""

from __future__ import annotations

import pytest
import yaml

from streamflow_dagster.lib.dbt_profile import rendered_profiles
from streamflow_dagster.platform.db import connection_env
from streamflow_dagster.platform.settings import DBT_PROJECT_DIR

URL = "postgresql://app:p%40ss'word@db.example:6543/prod?sslmode=verify-full"


def test_the_repository_profile_gets_every_connection_value():
    profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    env = connection_env(URL)
    output = rendered_profiles(profiles, env)["streamflow"]["outputs"]["local"]
    assert output["host"] == "db.example"
    assert output["port"] == 6543  # `| as_number`: an int, as dbt renders it
    assert output["user"] == "app"
    assert output["password"] == env["STREAMFLOW_PG_PASSWORD"]
    assert output["dbname"] == "prod"
    assert output["sslmode"] == "verify-full"
    assert output["threads"] == 4  # everything else as the file says
    assert "{{" not in yaml.safe_dump(output)


def test_a_default_applies_only_when_the_variable_is_absent():
    profiles = {"p": {"password": "{{ env_var('PW', '') }}", "port": "{{ env_var('PORT') }}"}}
    assert rendered_profiles(profiles, {"PORT": "1"}) == {"p": {"password": "", "port": "1"}}
    assert rendered_profiles(profiles, {"PORT": "1", "PW": "x"})["p"]["password"] == "x"


def test_a_missing_variable_names_its_key():
    with pytest.raises(ValueError, match=r"p\.host: HOST has no value"):
        rendered_profiles({"p": {"host": "{{ env_var('HOST') }}"}}, {})


def test_other_jinja_is_refused_with_its_key():
    with pytest.raises(ValueError, match=r"p\.schema: .*not a plain"):
        rendered_profiles({"p": {"schema": "{{ target.name }}_x"}}, {})
