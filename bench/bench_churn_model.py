"""Where churn_model's memory goes on a big month: RSS sampled every 0.1 s, by phase.

    nice -n 5 .venv/bin/python bench/bench_churn_model.py --state bench-work/churn1m/state

`--state`: a StreamFlow state folder whose warehouse already holds features.training_set
for 2024-01-31 (e.g. a copy of bench_million.py's `<work>/state/postgres` after its run:
copy it, the benchmark writes an MLflow database into that server). The churn_model asset
is materialized alone, in this process, on a fresh MLflow database of that server; the
pure steps it calls (loading, each service's training, importances, logging, the dataset
input, the card) are wrapped to label the samples, so the peak is found by phase.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.integration.ml
from common import machine  # noqa: E402

AS_OF = "2024-01-31"


class PhaseSampler:
    """This process's RSS every `interval_s`, each sample labelled with the current phase."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s, self.phase = interval_s, "start"
        self.samples: list[tuple[float, str, float]] = []  # t, phase, RSS MB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process(os.getpid())
        while not self._stop.is_set():
            with suppress(psutil.Error):
                self.samples.append((time.time(), self.phase, me.memory_info().rss / 2**20))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PhaseSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def wrap(self, module, name: str, label: str | None = None) -> None:
        """Label the samples taken while `module.name` runs (and `after <label>` once done)."""
        inner, label = getattr(module, name), label or name

        def labelled(*args, **kwargs):
            outer, self.phase = self.phase, label
            try:
                return inner(*args, **kwargs)
            finally:
                self.phase = f"{outer} (after {label})"

        setattr(module, name, labelled)

    def report(self) -> None:
        peaks: dict[str, tuple[float, float, float]] = {}  # phase: first t, last t, peak MB
        for t, phase, mb in self.samples:
            first, _, peak = peaks.get(phase, (t, t, 0.0))
            peaks[phase] = (first, t, max(peak, mb))
        start = self.samples[0][0]
        print(f"{'phase':<60} {'from s':>7} {'to s':>7} {'peak RSS MB':>12}")
        for phase, (first, last, peak) in sorted(peaks.items(), key=lambda p: p[1][0]):
            print(f"{phase[:60]:<60} {first - start:7.1f} {last - start:7.1f} {peak:12,.0f}")
        t, phase, mb = max(self.samples, key=lambda s: s[2])
        print(f"peak RSS {mb:,.0f} MB at {t - start:.1f} s, in {phase}")


def label_phases(sampler: PhaseSampler) -> None:
    from streamflow_dagster.defs import models
    from streamflow_dagster.ml import model_card, month, tracking, training

    sampler.wrap(models, "load_training_set")
    sampler.wrap(model_card, "segment_attributes")
    sampler.wrap(models, "_service_features")
    sampler.wrap(month, "train_compared_month")
    sampler.wrap(month, "train")
    sampler.wrap(training, "split_month")
    sampler.wrap(month, "feature_importances")
    sampler.wrap(month, "log_month")
    sampler.wrap(tracking, "_write_artifacts")
    sampler.wrap(month, "loads_back_check")
    sampler.wrap(month, "log_training_dataset")
    sampler.wrap(month, "metric_intervals")
    sampler.wrap(month, "segment_metrics")
    sampler.wrap(models, "_model_result")


def run(state: Path) -> None:
    os.environ["STREAMFLOW_HOME"] = str(state)
    os.environ.pop("STREAMFLOW_DATABASE_URL", None)
    import dagster as dg

    from streamflow_dagster.defs.features import FEATURE_ASSETS
    from streamflow_dagster.defs.models import MODEL_ASSETS
    from streamflow_dagster.platform.db import embedded_server, start_warehouse
    from streamflow_dagster.platform.settings import load_settings
    from tests.integration.ml.support import fresh_mlflow_store, model_asset_resources

    url = start_warehouse()
    server = embedded_server(load_settings()).status()
    store = fresh_mlflow_store(server.url("postgres"), state / "bench-churn-artifacts")
    print(f"warehouse {url.rsplit('@', 1)[-1]}, MLflow {store.tracking_uri.rsplit('/', 1)[-1]}")
    import sklearn.ensemble  # noqa: F401 (imported before the baseline sample, as in a run)

    with PhaseSampler() as sampler:
        label_phases(sampler)
        started, cpu = time.perf_counter(), time.process_time()
        result = dg.materialize(
            [*FEATURE_ASSETS, *MODEL_ASSETS],
            selection=["churn_model"],
            partition_key=AS_OF,
            resources=model_asset_resources(url, store),
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"churn_model {AS_OF}: {'ok' if result.success else 'FAILED'} in {seconds:.1f} s")
    print(f"CPU {cpu:.1f} s (this process); samples from RSS {sampler.samples[0][2]:,.0f} MB")
    sampler.report()
    events = result.asset_materializations_for_node("churn_model") if result.success else []
    for event in events:
        meta = {k: v.value for k, v in event.metadata.items()}
        print({k: meta.get(k) for k in ("rows", "algorithm", "auc", "feature_service")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    try:
        run(args.state.resolve())
    finally:
        from streamflow_dagster.platform.db import embedded_server
        from streamflow_dagster.platform.settings import load_settings

        embedded_server(load_settings()).stop()
        print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
