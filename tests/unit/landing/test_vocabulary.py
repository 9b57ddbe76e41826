"""The categorical vocabulary: which spellings mean the same value."""

from __future__ import annotations

import pytest

from streamflow_dagster.landing.contract import (
    CONTRACT_TYPE,
    LANDING_TABLES,
    NET_SERVICE,
    USER_GENDER,
    spelling_key,
)


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("Month-to-month", "month_to_month"),
        ("month_to_month", "month_to_month"),
        ("  MONTH  TO - MONTH ", "month_to_month"),
        ("Fiber optic", "fiber_optic"),
        ("_dsl_", "dsl"),
    ],
)
def test_case_spaces_hyphens_and_underscores_are_not_significant(spelling, key):
    assert spelling_key(spelling) == key


def test_every_canonical_value_and_synonym_maps_to_a_canonical_value():
    for vocabulary in (CONTRACT_TYPE, NET_SERVICE, USER_GENDER):
        assert set(vocabulary.by_key.values()) == set(vocabulary.values)
        for value in vocabulary.values:
            assert vocabulary.canonical(value) == value
    assert NET_SERVICE.canonical("none") == "No"
    assert NET_SERVICE.canonical("No internet service") == "No"
    assert NET_SERVICE.canonical("satellite") is None


def test_no_two_canonical_values_share_a_key():
    for table in LANDING_TABLES:
        for column in table.columns:
            if column.vocabulary:
                keys = [spelling_key(v) for v in column.vocabulary.values]
                assert len(set(keys)) == len(keys), column.name
