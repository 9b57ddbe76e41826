"""The registry's names: the registered model, its aliases and the version tags.

Plain constants apart from `registry` (which imports MLflow): `streamflow model status` and
the monitors read them without loading MLflow.
"""

REGISTERED_MODEL = "streamflow_churn"
PRODUCTION_ALIAS = "production"
PREVIOUS_ALIAS = "previous"
MODEL_DESCRIPTION = (
    "Probability that a StreamFlow subscriber churns in the month after AS_OF, from the 14 "
    "features of the Feast feature service it was trained with. One version per trained "
    "month (churn_model asset); serving loads alias `production`."
)

# Version tags.
AS_OF_TAG = "as_of"
DAGSTER_RUN_TAG = "dagster_run_id"
CODE_VERSION_TAG = "code_version"
FEATURE_SERVICE_TAG = "feature_service"
CHECKS_TAG = "checks"  # pending -> passed | failed
FAILED_CHECKS_TAG = "failed_checks"
DEMOTED_BY_HAND_TAG = "demoted_by_hand"  # taken out of production by `streamflow model ...`
UNFINISHED_RUN_TAG = "unfinished_run"  # its MLflow run never finished (ml/run_hygiene.py)
DECISION_PREFIX = "decision."
DECIDED_AGAINST_TAG = f"{DECISION_PREFIX}champion_version"
CHECKS_PENDING, CHECKS_PASSED, CHECKS_FAILED = "pending", "passed", "failed"
# The decision chain (ml/chain.py): what a month's recorded decision was based on.
DECISION_BASIS_TAG = f"{DECISION_PREFIX}basis"
REPLACED_TAG = f"{DECISION_PREFIX}replaced"  # on an older version of a re-run month
# Registered-model tags: the AS_OF of the chain decision alias `production` reflects, and
# whether a manual move set it (the automatic step then waits for a newer month).
PRODUCTION_AS_OF_TAG = "production_as_of"
PRODUCTION_BY_HAND_TAG = "production_by_hand"
