"""The model card of a registered version: its MLflow description and `model_card.md`.

Written when the version is registered (train_month) with a pending promotion section, which
production_model fills in once it has decided (`record_decision`). Markdown: MLflow's model
version page renders the description, its artifact page renders the file.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from psycopg import sql

from .card_stats import MIN_SEGMENT_CLASS, SEGMENT_COLUMNS, Interval, SegmentRow
from .registry_names import REGISTERED_MODEL

CARD_ARTIFACT = "model_card.md"
DECISION_HEADING = "## Promotion decision"
PENDING_DECISION = "Pending: production_model has not decided on this version yet."
# MLflow's SQL store keeps a version description in a varchar(5000).
DESCRIPTION_LIMIT = 5000
# Where the segment attributes live: one row per (user_id, as_of), built by dbt.
PROFILE_MART = ("marts", "subscriptions_profile_snapshots")
_METRIC_NAMES = {
    "auc": "AUC (ranking)",
    "precision": "Precision at the threshold",
    "recall": "Recall at the threshold",
    "f1": "F1 at the threshold",
    "accuracy": "Accuracy at the threshold",
    "churn_rate": "Churn rate",
}


@dataclass(frozen=True)
class CardFacts:
    as_of: str
    feature_service: str
    features: list[str]
    algorithm: str
    threshold: float
    split_rows: dict[str, int]  # train / validation / holdout
    churn_rate: float  # of every labelled row of the month
    metrics: dict[str, Interval]  # holdout, 95% intervals
    segments: list[SegmentRow] | None  # None: no attributes were given
    checks: dict[str, bool]  # check name -> passed
    dataset: str  # the MLflow dataset input: name and digest
    links: dict[str, str] = field(default_factory=dict)  # label -> http URL


def segment_attributes(conn: psycopg.Connection, as_of: str) -> pd.DataFrame:
    """The month's segment attributes per user (index user_id), from the profile mart."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in SEGMENT_COLUMNS)
    query = sql.SQL("select user_id, {} from {} where as_of = %s").format(
        columns, sql.Identifier(*PROFILE_MART)
    )
    rows = conn.execute(query, (as_of,)).fetchall()
    frame = pd.DataFrame(rows, columns=["user_id", *SEGMENT_COLUMNS])
    return frame.set_index("user_id")


def log_training_dataset(
    client: MlflowClient, run_id: str, training_set: pd.DataFrame, as_of: str, source_url: str
) -> str:
    """The month's training set as the run's dataset input (context "training"); its
    name and digest. The source is the training_set partition's page in the Dagster UI."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from .dataset import LABEL

    dataset = mlflow.data.from_pandas(
        training_set, source=source_url, name=f"training_set {as_of}", targets=LABEL
    )
    entity = DatasetInput(
        dataset._to_mlflow_entity(),  # what mlflow.log_input sends: there is no public builder
        tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")],
    )
    client.log_inputs(run_id, datasets=[entity])
    return f"`{dataset.name}` (digest {dataset.digest}, {len(training_set):,} rows)"


def card_markdown(facts: CardFacts) -> str:
    rows = facts.split_rows
    total = sum(rows.values())
    sections = [
        f"# streamflow_churn, month {facts.as_of}",
        "## Intended use\n\n"
        "Rank a month's active StreamFlow subscribers by their probability of churning in the "
        f"month after the month scored, so a retention team contacts the riskiest first "
        f"(`prediction` = probability >= {facts.threshold:.4f}, the validation rows' best F1). "
        "Not for decisions about a single person with legal or financial effect (pricing, "
        "credit, refusing service), nor for other products' customers.",
        "## Training window\n\n"
        f"- AS_OF {facts.as_of}: features as of that day, point in time (values with "
        f"as_of <= {facts.as_of}; usage over 30 days, payments and support over 90 days).\n"
        f"- Label: churned in the month after {facts.as_of}.\n"
        "- Months of data: 1 (one monthly snapshot; trained once its labels landed).",
        "## Data\n\n"
        f"- {total:,} labelled users, churn rate {facts.churn_rate:.1%}; split "
        f"{rows['train']:,} train / {rows['validation']:,} validation / "
        f"{rows['holdout']:,} holdout (stratified, seeded).\n"
        f"- Feature service `{facts.feature_service}` ({len(facts.features)} features): "
        f"{', '.join(facts.features)}.\n"
        f"- MLflow dataset input (context training): {facts.dataset}.",
        "## Metrics (holdout, 95% interval)\n\n"
        f"Model: {facts.algorithm}.\n\n| metric | value [95% CI] | method |\n|---|---|---|\n"
        + "\n".join(
            f"| {_METRIC_NAMES.get(name, name)} | {interval.text()} | {interval.method} |"
            for name, interval in facts.metrics.items()
        ),
        "## Metrics per segment (holdout)\n\n" + _segment_table(facts.segments),
        "## Checks\n\n"
        + "\n".join(
            f"- {name}: {'passed' if passed else 'FAILED'}" for name, passed in facts.checks.items()
        ),
        f"{DECISION_HEADING}\n\n{PENDING_DECISION}",
        "## Limitations\n\n" + "\n".join(f"- {line}" for line in _limitations(facts)),
    ]
    if facts.links:
        sections.append(
            "## Links\n\n" + "\n".join(f"- [{label}]({url})" for label, url in facts.links.items())
        )
    return "\n\n".join(sections) + "\n"


def _segment_table(segments: list[SegmentRow] | None) -> str:
    if segments is None:
        return "Not measured: no segment attributes were given for this month."
    lines = [
        "| segment | value | n | churn rate | predicted | AUC [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for row in segments:
        auc = row.auc.text() if row.auc else row.note
        lines.append(
            f"| {SEGMENT_COLUMNS.get(row.attribute, row.attribute)} | {row.value} | {row.rows:,} "
            f"| {row.churn_rate:.1%} | {row.mean_probability:.1%} | {auc} |"
        )
    return "\n".join(lines)


def _limitations(facts: CardFacts) -> list[str]:
    lines = [
        "Metrics are in time: the holdout is a fifth of the same month. How the scores do on "
        "later months is measured by the realized_performance monitor once labels land.",
        "One month of history: seasonality and slow trends are not seen; feature drift is "
        "watched by the feature_drift monitor.",
        "The probability is a ranking score first: the monitors check how well it matches "
        "realized churn rates.",
    ]
    used = set(facts.features)
    unused = [label for column, label in SEGMENT_COLUMNS.items() if column not in used]
    if unused:
        lines.append(
            f"Not model inputs, reported only: {', '.join(unused)} (the model cannot use them, "
            "and it may still serve those groups differently)."
        )
    if facts.segments:
        small = [f"{SEGMENT_COLUMNS[r.attribute]} = {r.value}" for r in facts.segments if not r.auc]
        if small:
            lines.append(
                f"Segments with under {MIN_SEGMENT_CLASS} churners or stayers in the holdout are "
                f"not measured: {', '.join(small)}."
            )
        measured = [r for r in facts.segments if r.auc]
        if measured:
            worst = min(measured, key=lambda r: r.auc.value)
            lines.append(
                f"Weakest measured segment: {SEGMENT_COLUMNS[worst.attribute]} = {worst.value} "
                f"(AUC {worst.auc.text()})."
            )
    return lines


def decision_markdown(
    action: str,
    reason: str,
    *,
    challenger_auc: float | None,
    champion: str | None,
    champion_auc: float | None,
    decided_at: str,
    dagster_run_url: str | None,
) -> str:
    by = f", [Dagster run]({dagster_run_url})" if dagster_run_url else ""
    aucs = f"AUC on this version's holdout: {_auc(challenger_auc)}"
    if champion:
        aucs += f"; champion {champion}: {_auc(champion_auc)}"
    return f"**{action}** ({decided_at}{by}). {reason}\n\n{aucs}."


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def with_decision(card: str, decision: str) -> str:
    """The card with its promotion section's body replaced by `decision`."""
    pattern = re.compile(rf"({re.escape(DECISION_HEADING)}\n\n)(.*?)(?=\n\n## |\Z)", re.S)
    if not pattern.search(card):
        raise ValueError(f"the card has no {DECISION_HEADING!r} section")
    return pattern.sub(lambda m: m.group(1) + decision, card, count=1)


def description_of(card: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as a version description: whole when it fits, else without the segment table."""
    if len(card) <= limit:
        return card
    note = f"Too long for the description: see the run's `{CARD_ARTIFACT}` artifact."
    shorter = re.sub(
        r"(## Metrics per segment \(holdout\)\n\n)(.*?)(?=\n\n## |\Z)",
        lambda m: m.group(1) + note,
        card,
        count=1,
        flags=re.S,
    )
    if len(shorter) <= limit:
        return shorter
    return shorter[: limit - len(note) - 2] + "\n\n" + note


def write_card(client: MlflowClient, version: str, run_id: str, card: str) -> None:
    """The card as the version's description and as `model_card.md` of its run."""
    client.update_model_version(REGISTERED_MODEL, version, description=description_of(card))
    with tempfile.TemporaryDirectory(prefix="streamflow-card-") as tmp:
        path = Path(tmp) / CARD_ARTIFACT
        path.write_text(card, encoding="utf-8")
        client.log_artifact(run_id, str(path))


def record_decision(client: MlflowClient, version: int | str, decision: str) -> bool:
    """Fill the version's promotion section with `decision`; False for a card-less version."""
    registered = client.get_model_version(REGISTERED_MODEL, str(version))
    card = _artifact_card(client, registered.run_id) or registered.description or ""
    if DECISION_HEADING not in card:
        return False  # registered before model cards existed: nothing to fill in
    write_card(client, str(version), registered.run_id, with_decision(card, decision))
    return True


def record_move(client: MlflowClient, moved, dagster_run_url: str | None = None) -> bool:
    """The latest move (a champion.MoveResult: automatic or by hand) on the card of the version
    it decided about; False when nothing was decided or that version has no card."""
    decision = moved.decision
    if moved.recorded_at is None or decision.challenger is None:
        return False  # nothing decided (unchanged), or no version decided about
    champion = decision.champion
    text = decision_markdown(
        str(decision.action),
        decision.reason,
        challenger_auc=decision.challenger.auc,
        champion=f"v{champion.version} ({champion.as_of})" if champion else None,
        champion_auc=champion.auc if champion else None,
        decided_at=moved.recorded_at,
        dagster_run_url=dagster_run_url,
    )
    return record_decision(client, decision.challenger.version, text)


def _artifact_card(client: MlflowClient, run_id: str | None) -> str | None:
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="streamflow-card-") as tmp:
        try:
            path = client.download_artifacts(run_id, CARD_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return None  # no card logged with the run: the description is the card
        return Path(path).read_text(encoding="utf-8")
