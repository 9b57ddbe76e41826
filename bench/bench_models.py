"""Benchmark of the model lifecycle on this machine: training, scoring, and the Telco table.

    .venv/bin/python bench/bench_models.py [--users 7000] [--score-users 1000000]
        [--telco ../shared/data/telco_customer_churn.csv] [--home bench-work/models-home]

1. train + log + register at --users: `train_month` (split, both candidates, threshold,
   holdout metrics and importances, four plots, log_model with signature and input example,
   registered version, the three checks) on two demo months in one process, and once in a
   fresh process (imports included);
2. the promotion: `decide_and_move`, and the paired bootstrap of the AUC difference of two
   months' models on one holdout (the noise MIN_AUC_GAIN is set against);
3. churn_scores at --score-users: one demo month in the marts, Feast applied, the
   production model; the asset through dg.materialize, and its read / score / write parts;
4. Telco: the importer's month, trained and registered; the registered version's holdout AUC
   against a plain RandomForestClassifier() on the same six CSV columns, same holdout rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine  # noqa: E402

FEATURE_FILES = ("subscriptions", "usage_agg_30d", "payments_agg_90d", "support_agg_90d")
PG_TYPES = {"TEXT": "text", "INT": "bigint", "NUM": "double precision", "BOOL": "boolean"}
PG_TYPES["DATE"] = "date"
BOOTSTRAP_RESAMPLES = 1000


def training_frame(folder: Path, features: list[str]) -> pd.DataFrame:
    """A landing month as features.training_set stores it (what dbt + Feast produce from it)."""
    frame = pd.read_csv(folder / "subscriptions.csv")
    for name in (*FEATURE_FILES[1:], "labels"):
        frame = frame.merge(pd.read_csv(folder / f"{name}.csv"), on="user_id")
    frame.insert(0, "as_of", pd.Timestamp(folder.name).date())
    return frame[["as_of", "user_id", *features, "churn_label"]].sort_values("user_id")


def feature_list() -> list[str]:
    """The churn_v1 service's features in its order, read from feature_repo (no registry)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "feature_repo"))
    from feature_services import churn_v1

    return [f.name for projection in churn_v1.feature_view_projections for f in projection.features]


def fresh_database(server_url: str, name: str) -> str:
    from streamflow_dagster.platform.db import ensure_database, with_database

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
    ensure_database(server_url, name)
    return with_database(server_url, name)


def new_mlflow_store(server_url: str, name: str, home: Path):
    import mlflow

    from streamflow_dagster.platform.mlflow_store import MlflowStore, prepare_store, sqlalchemy_uri

    root = home / f"artifacts-{name}"
    shutil.rmtree(root, ignore_errors=True)
    store = MlflowStore(sqlalchemy_uri(fresh_database(server_url, name)), root)
    started = time.perf_counter()
    experiment_id = prepare_store(store)
    seconds = time.perf_counter() - started
    # This script's fluent runs (mlflow.start_run) go to this store for the rest of the process.
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    return store, seconds


def train_and_time(client, frame: pd.DataFrame, run_label: str) -> dict:
    import mlflow

    from streamflow_dagster.ml.month import train_month

    as_of = str(frame["as_of"].iloc[0])
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"bench {as_of}"):
        month = train_month(
            client, frame, as_of=as_of, feature_service="churn_v1", dagster_run_id=run_label
        )
    return {
        "as_of": as_of,
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(month.trained.train_seconds, 2),
        "algorithm": month.trained.algorithm,
        "auc": round(month.evaluation.metrics["auc"], 4),
        "f1": round(month.evaluation.metrics["f1"], 4),
        "version": month.logged.version,
        "checks_failed": month.failed_checks,
        "_month": month,
    }


# -- 1 and 2: training, promotion ---------------------------------------------------------------
def bench_training(server_url: str, home: Path, users: int, features: list[str]) -> dict:
    from mlflow.tracking import MlflowClient

    from streamflow_dagster.landing.demo_data import generate_landing
    from streamflow_dagster.ml.champion import decide_and_move

    landing = home / f"landing-{users}"
    shutil.rmtree(landing, ignore_errors=True)
    months = [s.as_of.isoformat() for s in generate_landing(landing, users=users, months=2)]
    frames = [training_frame(landing / m, features) for m in months]
    store, schema_seconds = new_mlflow_store(server_url, "bench_mlflow", home)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    print(f"  MLflow tables created in an empty database: {schema_seconds:.1f} s (once)")
    results, promotions = [], []
    for frame in frames:
        result = train_and_time(client, frame, "bench")
        results.append(result)
        print(
            f"  train + log + register {result['as_of']} ({len(frame):,} users, in process): "
            f"{result['seconds']:.1f} s  [{result['algorithm']}, fit+select "
            f"{result['train_seconds']:.1f} s, AUC {result['auc']}, F1 {result['f1']}]",
            flush=True,
        )
        started = time.perf_counter()
        moved = decide_and_move(client, run="bench")
        promotions.append(round(time.perf_counter() - started, 2))
        print(f"  production_model: {promotions[-1]:.1f} s: {moved.decision.reason}")
    cold = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--child-train", str(landing / months[0]),
             "--tracking-uri", store.tracking_uri, "--artifact-root", str(store.artifact_root)],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    print(
        f"  train + log + register in a fresh process: {cold['seconds']:.1f} s "
        f"(+ {cold['import_seconds']:.1f} s importing scikit-learn, MLflow)"
    )
    noise = paired_bootstrap([r["_month"] for r in results])
    print(
        f"  paired bootstrap, AUC({months[1]} model) - AUC({months[0]} model) on the "
        f"{months[1]} holdout: {noise['difference']:+.4f}, sd {noise['sd']:.4f}"
    )
    return {
        "months": [{k: v for k, v in r.items() if k != "_month"} for r in results],
        "fresh_process": cold,
        "promotion_seconds": promotions,
        "bootstrap": noise,
        "tracking_uri": store.tracking_uri,
        "artifact_root": str(store.artifact_root),
    }


def paired_bootstrap(months) -> dict:
    from sklearn.metrics import roc_auc_score

    older, newer = months[0].trained, months[1].trained
    split = newer.split
    p_new = newer.churn_probability(split.X_holdout)
    p_old = older.churn_probability(split.X_holdout)
    y = split.y_holdout
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].all() or not y[rows].any():
            continue
        differences.append(
            roc_auc_score(y[rows], p_new[rows]) - roc_auc_score(y[rows], p_old[rows])
        )
    return {
        "difference": round(float(roc_auc_score(y, p_new) - roc_auc_score(y, p_old)), 4),
        "sd": round(float(np.std(differences)), 4),
        "holdout_rows": int(len(y)),
        "holdout_churners": int(y.sum()),
    }


def child_train(folder: Path, tracking_uri: str, artifact_root: str) -> None:
    started = time.perf_counter()
    import mlflow  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from mlflow.tracking import MlflowClient

    from streamflow_dagster.ml.month import train_month  # noqa: F401
    from streamflow_dagster.platform.mlflow_store import MlflowStore, fluent_store

    imported = time.perf_counter() - started
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with fluent_store(MlflowStore(tracking_uri, Path(artifact_root))):
        result = train_and_time(client, training_frame(folder, feature_list()), "bench-cold")
    print(json.dumps({"seconds": result["seconds"], "import_seconds": round(imported, 2)}))


# -- 3: churn_scores -----------------------------------------------------------------------------
def load_marts(url: str, folder: Path) -> None:
    """One landing month into marts.* with COPY (what the dbt snapshot marts hold)."""
    from streamflow_dagster.landing.contract import TABLES_BY_NAME

    as_of = folder.name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema marts")
        for name in ("users", *FEATURE_FILES):
            table = TABLES_BY_NAME[name]
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.kind.name]))
                for c in table.columns
            )
            conn.execute(
                sql.SQL("create table marts.{} ({}, as_of date not null default {})").format(
                    sql.Identifier(f"load_{name}"), columns, sql.Literal(as_of)
                )
            )
            copy = sql.SQL("copy marts.{} ({}) from stdin (format csv, header true)").format(
                sql.Identifier(f"load_{name}"),
                sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names),
            )
            with conn.cursor().copy(copy) as out, open(folder / table.file, "rb") as src:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
        conn.execute(
            "create table marts.subscriptions_profile_snapshots as select s.*, u.signup_date, "
            "u.user_gender, u.user_is_senior, u.has_family, u.has_dependents "
            "from marts.load_subscriptions s join marts.load_users u using (user_id, as_of)"
        )
        for name in FEATURE_FILES[1:]:
            conn.execute(
                sql.SQL("alter table marts.{} rename to {}").format(
                    sql.Identifier(f"load_{name}"), sql.Identifier(f"{name}_snapshots")
                )
            )
        for name in ("subscriptions_profile", *FEATURE_FILES[1:]):
            conn.execute(
                sql.SQL("alter table marts.{} add primary key (user_id, as_of)").format(
                    sql.Identifier(f"{name}_snapshots")
                )
            )
        conn.execute("vacuum (freeze, analyze)")


def bench_scores(server_url: str, home: Path, users: int, training: dict) -> dict:
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from streamflow_dagster.defs.models import churn_scores
    from streamflow_dagster.defs.resources import (
        FeastResource,
        MlflowStoreResource,
        WarehouseResource,
        mlflow_tracking_resource,
    )
    from streamflow_dagster.features.registry import apply_repo
    from streamflow_dagster.features.specs import service_views
    from streamflow_dagster.features.store import (
        FEATURE_SERVICE,
        feature_store,
        prepare_feature_database,
    )
    from streamflow_dagster.landing.demo_data import generate_landing
    from streamflow_dagster.ml.dataset import model_features
    from streamflow_dagster.ml.registry import PRODUCTION_ALIAS, alias_version, load_version
    from streamflow_dagster.ml.scoring import score_month

    landing = home / f"landing-scores-{users}"
    shutil.rmtree(landing, ignore_errors=True)
    started = time.perf_counter()
    month = generate_landing(landing, users=users, months=1, seed=7)[0].as_of
    url = fresh_database(server_url, f"bench_scores_{users}")
    load_marts(url, landing / month.isoformat())
    prepare_feature_database(url)
    store = feature_store(url)
    apply_repo(store, Path(__file__).resolve().parent.parent / "feature_repo")
    print(
        f"  setup: {users:,} users in the marts, Feast applied: "
        f"{time.perf_counter() - started:.0f} s"
    )

    tracking_uri = training["tracking_uri"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    production = alias_version(client, PRODUCTION_ALIAS)
    model = load_version(client, production.version)
    views = service_views(store, FEATURE_SERVICE)
    with psycopg.connect(url) as conn:
        parts = score_month(
            conn, views, month, model, int(production.version), model_features(model)
        )
    total = parts.read_seconds + parts.score_seconds + parts.write_seconds
    print(
        f"  score_month: {parts.rows:,} rows in {total:.1f} s (read {parts.read_seconds:.1f} s, "
        f"score {parts.score_seconds:.1f} s, write {parts.write_seconds:.1f} s)"
    )
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = dg.materialize(
        [churn_scores],
        partition_key=month.isoformat(),
        instance=instance,
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "feast": FeastResource(),
            "mlflow_store": MlflowStoreResource(
                tracking_uri=tracking_uri, artifact_root=training["artifact_root"]
            ),
            "mlflow": mlflow_tracking_resource,
        },
    )
    asset_seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select count(*) from scores.churn_scores where as_of = %s", (month,)
        ).fetchone()[0]
    print(
        f"  churn_scores asset (dg.materialize, model from the registry): {asset_seconds:.1f} s,"
        f" {rows:,} rows for {month}, success={result.success}"
    )
    return {
        "users": users,
        "rows": rows,
        "asset_seconds": round(asset_seconds, 2),
        "read_seconds": round(parts.read_seconds, 2),
        "score_seconds": round(parts.score_seconds, 2),
        "write_seconds": round(parts.write_seconds, 2),
        "model_version": int(production.version),
    }


# -- 4: Telco -----------------------------------------------------------------------------------
def bench_telco(server_url: str, home: Path, csv: Path, features: list[str]) -> dict:
    from mlflow.tracking import MlflowClient
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    from streamflow_dagster.landing.telco import FEATURE_SOURCE_COLUMNS, write_telco_month
    from streamflow_dagster.ml.champion import holdout_auc
    from streamflow_dagster.ml.registry import get_version, load_holdout, load_version

    landing = home / "telco-landing"
    shutil.rmtree(landing, ignore_errors=True)
    folder = write_telco_month(csv, "2024-01-31", landing)
    store, _ = new_mlflow_store(server_url, "bench_mlflow_telco", home)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    result = train_and_time(client, training_frame(folder, features), "bench-telco")
    version = get_version(client, result["version"])
    registered = load_version(client, version.version)  # scored as serving would load it
    holdout = load_holdout(client, version)
    registered_auc = holdout_auc(registered, holdout, features)

    telco = pd.read_csv(csv)
    columns = list(FEATURE_SOURCE_COLUMNS.values())
    X = pd.get_dummies(telco[columns], columns=["InternetService"], dtype=float)
    for flag in ("PaperlessBilling", "StreamingTV", "StreamingMovies"):
        X[flag] = (telco[flag] == "Yes").astype(float)
    y = (telco["Churn"] == "Yes").to_numpy()
    in_holdout = telco["customerID"].isin(set(holdout["user_id"])).to_numpy()
    plain = RandomForestClassifier(random_state=42).fit(X[~in_holdout], y[~in_holdout])
    plain_auc = roc_auc_score(y[in_holdout], plain.predict_proba(X[in_holdout])[:, 1])
    print(
        f"  Telco ({len(telco):,} customers, holdout {in_holdout.sum():,}): registered v"
        f"{version.version} ({result['algorithm']}) holdout AUC {registered_auc:.4f} vs plain "
        f"RandomForestClassifier() on {', '.join(columns)}: {plain_auc:.4f}"
    )
    return {
        "registered_auc": round(registered_auc, 4),
        "plain_random_forest_auc": round(float(plain_auc), 4),
        "algorithm": result["algorithm"],
        "holdout_rows": int(in_holdout.sum()),
        "plain_trained_on_rows": int((~in_holdout).sum()),
        "train_log_register_seconds": result["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=7000)
    parser.add_argument("--score-users", type=int, default=1_000_000)
    root = Path(__file__).resolve().parent.parent
    parser.add_argument(
        "--telco", type=Path, default=root.parent / "shared" / "data" / "telco_customer_churn.csv"
    )
    parser.add_argument("--home", type=Path, default=root / "bench-work" / "models-home")
    parser.add_argument("--child-train", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    parser.add_argument("--artifact-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_train:
        child_train(args.child_train, args.tracking_uri, args.artifact_root)
        return

    from streamflow_dagster.platform.embedded_pg import EmbeddedPostgres

    home = args.home.resolve()
    os.environ["STREAMFLOW_HOME"] = str(home)
    print(f"bench_models on {machine()}, load average {os.getloadavg()[0]:.1f}")
    server_url = EmbeddedPostgres(home / "postgres").start().url("postgres")
    features = feature_list()
    print(f"1-2. train + log + register, promotion ({args.users:,} users)")
    training = bench_training(server_url, home, args.users, features)
    print(f"3. churn_scores ({args.score_users:,} users)")
    scores = bench_scores(server_url, home, args.score_users, training)
    telco = {}
    if args.telco.exists():
        print("4. Telco")
        telco = bench_telco(server_url, home, args.telco, features)
    print(json.dumps({"training": training, "scores": scores, "telco": telco}, default=str))


if __name__ == "__main__":
    main()
