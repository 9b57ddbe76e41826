"""The serving_skew monitor: what the API answered with against what training would read.

Not in the monthly job: a month's run builds its online features before anything is served
from them, so its skew is measured later, once the API has answered: every night by the
serving_skew_daily schedule (defs/schedules.py) for the month served online, or by hand.
"""

import dagster as dg

from ..monitoring.skew import REL_TOLERANCE
from .checks import to_check_result
from .features import FEATURE_MARTS, feast_registry
from .partitions import AS_OF_PARTITIONS, validate_as_of
from .resources import FeastResource, WarehouseResource

SERVING_SKEW_CHECK = "served_features_match_offline"
# The monitors' group (defs/monitors.py names it too; importing it would be circular).
MONITORING_GROUP = "monitoring"
# Features in the asset's table of differences (the check's metadata has every count).
TABLE_ROWS = 20


@dg.asset(
    partitions_def=AS_OF_PARTITIONS,
    deps=[*FEATURE_MARTS, feast_registry],
    group_name=MONITORING_GROUP,
    kinds={"postgres", "feast"},
    check_specs=[
        dg.AssetCheckSpec(
            SERVING_SKEW_CHECK,
            asset="serving_skew",
            description="Every feature value the API served from the month's online features "
            "(serving.prediction_log.features) equals the offline value of the same user and "
            "AS_OF (the point-in-time read training uses): exact for strings, booleans and "
            f"integers, within a relative {REL_TOLERANCE:g} for floats; a served user absent "
            "from the offline month also fails. Passes when nothing was served yet.",
            partitions_def=AS_OF_PARTITIONS,
        )
    ],
)
def serving_skew(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, feast: FeastResource
) -> dg.MaterializeResult:
    """Training/serving skew: the month's served feature values vs the offline store's."""
    from ..features.specs import merge_views, service_views
    from ..ml.scoring import read_month_features
    from ..monitoring.queries import served_features
    from ..monitoring.skew import compare_served, skew_outcome

    as_of = validate_as_of(context.partition_key)
    store = feast.store(warehouse.url())
    # Every applied service's views, as the API reads them: a churn_v2 answer logs 26 features.
    services = sorted(s.name for s in store.list_feature_services())
    views = merge_views([service_views(store, name) for name in services])
    kinds = {name: kind for view in views for name, kind in view.features}
    with warehouse.connect() as conn:
        served, unrecorded = served_features(conn, as_of)
        offline = read_month_features(conn, views, as_of) if len(served) else None
    if offline is None:
        offline = served.iloc[0:0]
    report = compare_served(served, offline, kinds, views[0].join_key)
    outcome = skew_outcome(report, str(as_of), unrecorded)
    (context.log.info if outcome.passed else context.log.error)(outcome.description)
    metadata = {
        "as_of": str(as_of),
        "served_rows": report.rows,
        "served_users": report.users,
        "features_compared": len(report.features),
        "features_skewed": len(report.skewed),
        "differing_values": sum(f.differing for f in report.features),
        "users_missing_offline": len(report.missing_offline),
        "result": outcome.description,
    }
    if report.features:
        metadata["per_feature"] = dg.MetadataValue.md(_table(report))
    return dg.MaterializeResult(
        metadata=metadata, check_results=[to_check_result(SERVING_SKEW_CHECK, outcome)]
    )


def _table(report) -> str:
    ranked = sorted(report.features, key=lambda f: f.differing, reverse=True)[:TABLE_ROWS]
    lines = ["| feature | tolerance | compared | differing | e.g. (user: served / offline) |"]
    lines.append("|---|---|---|---|---|")
    for f in ranked:
        example = (
            f"{f.examples[0][0]}: {f.examples[0][1]!r} / {f.examples[0][2]!r}" if f.examples else ""
        )
        lines.append(f"| {f.feature} | {f.tolerance} | {f.compared} | {f.differing} | {example} |")
    return "\n".join(lines)
