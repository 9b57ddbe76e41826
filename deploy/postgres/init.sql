-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER, who owns POSTGRES_DB (the warehouse, `streamflow`). The platform creates the
-- other two itself when it may (platform/instance.py, platform/mlflow_store.py), but the MLflow
-- server starts before any StreamFlow process and needs its database to exist.
CREATE DATABASE dagster;
CREATE DATABASE mlflow;
