"""Feast feature services: the versioned feature sets models are trained and served with."""

from feast import FeatureService
from feature_views import (
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
