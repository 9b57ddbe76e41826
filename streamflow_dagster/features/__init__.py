"""Feast for StreamFlow: the store, the fast online write and point-in-time training sets.

Pure code without Dagster: `store` (environment, feature service), `specs` (what the SQL
paths read from the registry), `encoding` + `online_tables` + `online` (Feast's online
format built inside PostgreSQL, newest month wins), `training` + `training_table` (the
month's point-in-time set), `consistency` (online vs offline), `registry` (apply, describe).

Feast itself is imported only inside the functions that use it: `import feast` takes about
7 s here, and the Dagster definitions (loaded by every run) should not pay for it.
"""
