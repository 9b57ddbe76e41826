"""The plain baseline of the serving benchmark (issue 5): no StreamFlow code on the request path.

A minimal FastAPI handler doing what the plain stack does: Feast's `get_online_features` through
the churn_v1 feature service, then MLflow pyfunc `predict` of models:/streamflow_churn@production,
one uvicorn worker. Same Feast repository, online store, registry and model as the API under
test. Run by bench_serving.py:

    STREAMFLOW_HOME=... uvicorn bench.serving_baseline_app:app --port 8766 --workers 1
"""

import mlflow
import mlflow.pyfunc
import pandas as pd
from fastapi import FastAPI

from streamflow_dagster.features.store import FEATURE_SERVICE, feature_store
from streamflow_dagster.platform.db import start_warehouse
from streamflow_dagster.platform.mlflow_store import resolve_store
from streamflow_dagster.platform.settings import load_settings

settings = load_settings()
store = feature_store(start_warehouse(settings))
service = store.get_feature_service(FEATURE_SERVICE)
mlflow.set_tracking_uri(resolve_store(settings).tracking_uri)
model = mlflow.pyfunc.load_model("models:/streamflow_churn@production")
FEATURES = [f.name for projection in service.feature_view_projections for f in projection.features]
app = FastAPI()


@app.get("/predict/{user_id}")
def predict(user_id: str):
    features = store.get_online_features(
        features=service, entity_rows=[{"user_id": user_id}]
    ).to_dict()
    frame = pd.DataFrame({name: features[name] for name in FEATURES})
    frame = frame.astype({name: "float64" for name in FEATURES if name != "net_service"})
    prediction = model.predict(frame)
    return {"user_id": user_id, "prediction": int(prediction[0])}
