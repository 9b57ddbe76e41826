"""The fault suite reuses the integration tests' fixtures (marts, demo landing)."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    demo_landing,
    demo_marts,
    marts_url,
)


@pytest.fixture
def fault_home():
    """A folder for a server of one test's own, outside pytest's tmp root: a pytest started
    meanwhile (another checkout, as the same user) chmods /tmp/pytest-of-<user> back to 0700,
    which would cut the server's system user off from its files mid-test."""
    folder = Path(tempfile.mkdtemp(prefix="streamflow-faults-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
