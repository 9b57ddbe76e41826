"""Feast as assets: the applied registry, the month online, the month's training set."""

from pathlib import Path

import dagster as dg

from ..features.consistency import check_online_matches_offline
from ..features.online_store import current_month, write_month
from ..features.registry import apply_repo, repo_code_version
from ..features.specs import online_views, service_views, union_views
from ..features.store import (
    REGISTRY_SCHEMA,
    feature_names,
    prepare_feature_database,
)
from ..features.training_table import (
    TRAINING_SET_TABLE,
    labels_not_landed_message,
    write_training_set,
)
from ..platform.db import readable_failures
from ..platform.settings import FEATURE_REPO_DIR
from .partitions import AS_OF_PARTITIONS, validate_as_of
from .ranges import materialize_months
from .resources import FeastResource, WarehouseResource

FEATURES_GROUP = "features"
FEATURE_MARTS = [
    dg.AssetKey(name)
    for name in (
        "subscriptions_profile_snapshots",
        "usage_agg_30d_snapshots",
        "payments_agg_90d_snapshots",
        "support_agg_90d_snapshots",
        "customer_profile_snapshots",  # churn_v2's customer profile
    )
]
LABELS_MART = dg.AssetKey("churn_labels")
ONLINE_CONSISTENCY_CHECK = "online_matches_offline"
LABELS_LANDED_CHECK = "labels_landed"
# Metadata key churn_model reads (or features.training_set_months.labels_landed).
LABELS_LANDED = "labels_landed"
# Users compared online vs offline after each write: every user goes through the same SQL, so
# a wrong encoding or month shows in any sample; 100 keeps the check near a second at 1M users.
CONSISTENCY_SAMPLE_USERS = 100


@dg.asset(
    group_name=FEATURES_GROUP,
    kinds={"feast", "postgres"},
    code_version=repo_code_version(FEATURE_REPO_DIR),
    automation_condition=dg.AutomationCondition.on_missing()
    | dg.AutomationCondition.code_version_changed(),
)
def feast_registry(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, feast: FeastResource
) -> dg.MaterializeResult:
    """Feast definitions of feature_repo/ applied (`feast apply`): entities, views, services."""
    url = warehouse.url()
    prepare_feature_database(url)  # the registry's schema, UTC sessions: what Feast needs first
    store = feast.store(url)
    applied = apply_repo(store, Path(feast.repo_path))
    for change in applied.changes:
        context.log.info(change)
    contents = applied.contents
    return dg.MaterializeResult(
        metadata={
            "project": store.project,
            "registry": f"SQL registry, schema {REGISTRY_SCHEMA}",
            "changes": dg.MetadataValue.md(
                "\n".join(f"- {c}" for c in applied.changes) or "No changes to the registry"
            ),
            "entities": dg.MetadataValue.json(contents.entities),
            "data_sources": dg.MetadataValue.json(contents.data_sources),
            "feature_views": dg.MetadataValue.json(contents.feature_views),
            "feature_services": dg.MetadataValue.json(contents.feature_services),
            "feature_count": sum(len(f) for f in contents.feature_views.values()),
        }
    )


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[*FEATURE_MARTS, feast_registry],
    group_name=FEATURES_GROUP,
    kinds={"feast", "postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            ONLINE_CONSISTENCY_CHECK,
            asset="online_features",
            blocking=True,
            description="A sample of users: get_online_features equals the marts' newest month "
            "(every feature of the compared services).",
            partitions_def=AS_OF_PARTITIONS,
        )
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def online_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, feast: FeastResource
):
    """The month's features in Feast's online store, unless a newer month is already online."""
    yield from materialize_months(
        context, lambda as_of: _online_month(context, warehouse, feast, as_of)
    )


def _online_month(context, warehouse, feast, as_of_key: str) -> dg.MaterializeResult:
    as_of = validate_as_of(as_of_key)
    url = warehouse.url()
    store = feast.store(url)
    views = online_views(store)
    with readable_failures(url, service="online store"):
        write = write_month(url, store, views, as_of)  # PostgreSQL or Redis, as configured
    if write.written:
        context.log.info(f"{as_of}: {write.rows_written:,} online rows in {write.seconds:.1f} s")
    else:
        context.log.warning(
            f"{as_of} not written online: the newer month {write.online_as_of} is online and "
            "stays there (newest month wins; a backfill never puts old values online)"
        )
    # The widest compared service: churn_v2 holds churn_v1's features and the customer
    # profile's, so every online view a model reads is compared.
    checked = max(feast.compared_services, key=lambda name: len(feature_names(store, name)))
    with warehouse.connect() as conn:
        consistency = check_online_matches_offline(
            store,
            conn,
            service_views(store, checked),
            checked,
            current_month(url, store),
            CONSISTENCY_SAMPLE_USERS,
        )
    return dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "written": write.written,
            "online_month": str(write.online_as_of),
            "online_store": store.config.online_store.type,
            "users_by_view": dg.MetadataValue.json(write.users_by_view),
            "dagster/row_count": write.rows_written,
            "seconds": round(write.seconds, 2),
            "rows_per_second": round(write.rows_written / write.seconds) if write.written else 0,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ONLINE_CONSISTENCY_CHECK,
                passed=consistency.passed,
                description=(
                    f"{consistency.users_checked} users of {consistency.online_month}: "
                    f"{consistency.mismatches} of {consistency.values_checked} values differ"
                ),
                metadata={
                    "online_month": str(consistency.online_month),
                    "users_checked": consistency.users_checked,
                    "values_checked": consistency.values_checked,
                    "mismatches": consistency.mismatches,
                    "examples": dg.MetadataValue.json(consistency.examples),
                },
            )
        ],
    )


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[*FEATURE_MARTS, LABELS_MART, feast_registry],
    group_name=FEATURES_GROUP,
    kinds={"feast", "postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            LABELS_LANDED_CHECK,
            asset="training_set",
            description="The month's churn labels have landed (they arrive a month late).",
            partitions_def=AS_OF_PARTITIONS,
        )
    ],
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def training_set(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, feast: FeastResource
):
    """Point-in-time features of the month's users with their churn labels (features schema)."""
    yield from materialize_months(
        context, lambda as_of: _training_month(context, warehouse, feast, as_of)
    )


def _training_month(context, warehouse, feast, as_of_key: str) -> dg.MaterializeResult:
    as_of = validate_as_of(as_of_key)
    store = feast.store(warehouse.url())
    # Every compared service's features, so their models train on the same rows.
    views = union_views(store, feast.compared_services)
    with warehouse.connect() as conn:
        result = write_training_set(conn, views, ",".join(feast.compared_services), as_of)
    if not result.labels_landed:
        context.log.warning(labels_not_landed_message(as_of))
    return dg.MaterializeResult(
        metadata={
            "as_of": str(as_of),
            LABELS_LANDED: result.labels_landed,
            "dagster/row_count": result.rows,
            "entity_rows": result.entity_rows,
            "unlabeled_users": result.unlabeled_users,
            "churn_rate": result.churn_rate,
            "null_rate": dg.MetadataValue.json(result.null_rate),
            "feature_service": result.feature_service,
            "table": f"features.{TRAINING_SET_TABLE}",
            "seconds": round(result.seconds, 2),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LABELS_LANDED_CHECK,
                passed=result.labels_landed,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{result.rows} labelled users"
                    if result.labels_landed
                    else labels_not_landed_message(as_of)
                ),
                metadata={"rows": result.rows, "unlabeled_users": result.unlabeled_users},
            )
        ],
    )


FEATURE_ASSETS = [feast_registry, online_features, training_set]
