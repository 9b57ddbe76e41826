"""Feast feature services: the versioned feature sets models are trained and served with."""

from feast import FeatureService
from feature_views import (
    customer_profile_fv,
    payments_agg_90d_fv,
    subs_profile_fv,
    support_agg_90d_fv,
    usage_agg_30d_fv,
)

# The churn model's 14 features. Training (get_historical_features) and serving
# (get_online_features) both read this service, never a copied list. A change of features
# is a new service (churn_v2) next to this one, so a registered model keeps its inputs.
churn_v1 = FeatureService(
    name="churn_v1",
    features=[subs_profile_fv, usage_agg_30d_fv, payments_agg_90d_fv, support_agg_90d_fv],
    description="The 14 features of the streamflow_churn model.",
    tags={"model": "streamflow_churn"},
)

# The challenger: churn_v1's 14 features first, in the same order, then the customer profile's
# 12. Every month trains a model on each service and compares them on the same holdout.
churn_v2 = FeatureService(
    name="churn_v2",
    features=[
        subs_profile_fv,
        usage_agg_30d_fv,
        payments_agg_90d_fv,
        support_agg_90d_fv,
        customer_profile_fv,
    ],
    description="churn_v1's 14 features plus contract, add-ons, customer attributes and "
    "charges per month of tenure (26).",
    tags={"model": "streamflow_churn"},
)
