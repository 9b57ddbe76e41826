"""Several feature services read as one: the union of their views, and each service's part."""

from __future__ import annotations

from datetime import timedelta

from streamflow_dagster.features.online_read import OnlineReader, UserFeatures
from streamflow_dagster.features.specs import ViewSpec, merge_views


def view(name: str, *features: str) -> ViewSpec:
    return ViewSpec(
        name=name,
        source=f"marts.{name}",
        timestamp_field="as_of",
        join_key="user_id",
        ttl=timedelta(days=27),
        features=tuple((f, "DOUBLE") for f in features),
        online_table=f"streamflow_{name}",
    )


V1 = [view("subs", "a", "b"), view("usage", "c")]
V2 = [view("subs", "a", "b"), view("usage", "c"), view("customer", "d", "e")]


def test_merge_keeps_each_view_once_with_every_feature_in_first_seen_order():
    merged = merge_views([V1, V2, [view("subs", "z", "a")]])
    assert [(v.name, v.feature_names) for v in merged] == [
        ("subs", ["a", "b", "z"]),
        ("usage", ["c"]),
        ("customer", ["d", "e"]),
    ]


def test_a_union_reader_narrows_to_one_service_and_its_views():
    reader = OnlineReader(
        merge_views([V1, V2]), "feast_online", {"v1": list("abc"), "v2": list("abcde")}
    )
    assert reader.features == list("abcde")
    v1 = reader.for_services(["v1"])
    assert [v.name for v in v1.views] == ["subs", "usage"] and v1.features == list("abc")
    assert reader.for_services(["v1", "v2"]).features == list("abcde")


def test_a_users_features_restricted_to_a_service_name_what_it_misses():
    found = UserFeatures("u1", {"a": 1.0, "b": None, "d": 2.0}, ["c", "e"], None)
    v1 = found.only(["a", "b", "c"])
    assert v1.values == {"a": 1.0, "b": None} and v1.missing == ["c"] and not v1.complete
    assert found.only(["d", "a"]).values == {"d": 2.0, "a": 1.0}
    assert found.only(["d", "a"]).complete
