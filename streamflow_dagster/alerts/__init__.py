"""Alerts as plain data: what failed, where to look, and how each sink receives it.

No Dagster import here: the alert sensor and the freshness schedule turn Dagster events
into `Alert`s; this package builds payloads, dedup keys and the ops.alerts table.
"""
