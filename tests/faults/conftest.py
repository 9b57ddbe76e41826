"""The fault suite reuses the integration tests' fixtures (marts, demo landing, environ)."""

from tests.integration.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    demo_landing,
    demo_marts,
    marts_url,
    restore_environ,
)
