"""dbt's profiles.yml with the connection filled in, for one invocation (pure, unit-tested).

profiles.yml reads every connection detail with `env_var(...)`. A run passes its warehouse's
connection to dbt through a rendered copy instead of this process's environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# `{{ env_var('NAME') }}`, `{{ env_var('NAME', 'default') }}`, optionally `| as_number`.
ENV_VAR_CALL = re.compile(
    r"^\{\{\s*env_var\(\s*'(?P<name>[A-Za-z0-9_]+)'\s*(?:,\s*'(?P<default>[^']*)'\s*)?\)"
    r"\s*(?P<number>\|\s*as_number\s*)?\}\}$"
)


def rendered_profiles(profiles: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """`profiles` (profiles.yml as loaded) with each `env_var(...)` value taken from `env`.

    A value with any other Jinja is an error naming its key: dbt alone could render it.
    """
    return {key: _render(key, value, env) for key, value in profiles.items()}


def _render(where: str, value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {key: _render(f"{where}.{key}", item, env) for key, item in value.items()}
    if not isinstance(value, str) or "{{" not in value:
        return value
    call = ENV_VAR_CALL.match(value.strip())
    if call is None:
        raise ValueError(
            f"profiles.yml {where}: {value!r} is not a plain {{{{ env_var('NAME') }}}}; "
            "keep connection values to env_var calls (with an optional default, | as_number)"
        )
    name, default = call["name"], call["default"]
    if name in env:
        text = env[name]
    elif default is not None:
        text = default
    else:
        raise ValueError(f"profiles.yml {where}: {name} has no value and no default")
    return int(text) if call["number"] else text
