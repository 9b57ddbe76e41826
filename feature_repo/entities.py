"""Feast entities: the StreamFlow subscriber."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A StreamFlow subscriber, keyed by the user_id of the landing files.",
)
