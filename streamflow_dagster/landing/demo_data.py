"""Deterministic demo landing data: a Telco-like subscriber base that evolves month by month.

The marginals follow the public IBM Telco churn table (tenure, contract mix, internet service,
add-ons, the price list behind `MonthlyCharges`, demographics). One population lives through
`months` month ends: each month a hidden logistic model decides who churns in the next month
(`labels.csv`), churned users disappear from the next month's files, new users sign up so the
base stays near `users`, survivors age by a month and their usage drifts slowly.

From month SHIFTED_MONTH_INDEX on, streaming quality degrades for good (a CDN change): watch
hours drop, sessions shorten, rebuffering doubles. The change is lasting, so a month-to-month
drift monitor sees one shifted month and stable months on both sides of it.

Pure numpy, no Dagster: the CLI and the tests call `generate_landing` directly.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from streamflow_dagster.landing.completeness import write_manifest
from streamflow_dagster.landing.contract import CONTRACT_TYPES, LANDING_TABLES, NET_SERVICES

# A group of users as parallel arrays, one per attribute (numpy is all the speed needed here).
Users = dict[str, np.ndarray]

# The 7th month (2024-07-31 by default): late enough for a few stable months of history.
SHIFTED_MONTH_INDEX = 6
# Telco's 26.5% churn covers many months; monthly churn of a subscription service is lower,
# but 7% keeps positives numerous enough to train on a few thousand users.
TARGET_MONTHLY_CHURN = 0.07
# Multipliers applied from the shifted month on (watch hours -32%, sessions -20%, rebuffers x2).
SHIFT_WATCH_FACTOR = 0.68
SHIFT_SESSION_FACTOR = 0.8
SHIFT_REBUFFER_FACTOR = 2.0

# Telco tenure histogram (months, inclusive ranges, share): a spike of one-month users and a
# pile-up of 72-month users, hence the U shape. Month-0 users are the month's new signups.
TENURE_BINS = (
    (1, 1, 0.087),
    (2, 3, 0.062),
    (4, 6, 0.060),
    (7, 12, 0.100),
    (13, 24, 0.145),
    (25, 36, 0.118),
    (37, 48, 0.108),
    (49, 60, 0.118),
    (61, 71, 0.149),
    (72, 72, 0.053),
)
# Contract mix (Month-to-month, One year, Two year) by tenure up to the given month: Telco's,
# except month 0, where signups resemble the users who leave (almost all month-to-month fiber)
# so that the base keeps its mix over the year instead of drifting towards DSL and long contracts.
CONTRACT_MIX_BY_TENURE = (
    (0, (0.92, 0.06, 0.02)),
    (6, (0.96, 0.03, 0.01)),
    (12, (0.82, 0.12, 0.06)),
    (24, (0.72, 0.19, 0.09)),
    (48, (0.50, 0.33, 0.17)),
    (10_000, (0.15, 0.28, 0.57)),
)
# Telco internet service (DSL, Fiber optic, No) by contract, and for signups (see above).
NET_MIX_BY_CONTRACT = ((0.32, 0.55, 0.13), (0.39, 0.37, 0.24), (0.37, 0.25, 0.38))
SIGNUP_NET_MIX = (0.25, 0.68, 0.07)
# Telco share of internet users with each add-on or streaming plan, by contract.
ADD_ON_SHARE_BY_CONTRACT = {
    "add_on_security": (0.22, 0.50, 0.71),
    "add_on_backup": (0.32, 0.56, 0.70),
    "add_on_device_protect": (0.29, 0.58, 0.78),
    "add_on_support": (0.20, 0.50, 0.78),
    "plan_stream_tv": (0.39, 0.59, 0.72),
    "plan_stream_movies": (0.39, 0.60, 0.73),
}
ADD_ONS = ("add_on_security", "add_on_backup", "add_on_device_protect", "add_on_support")
PLANS = ("plan_stream_tv", "plan_stream_movies")
# Telco's price list: a linear fit of MonthlyCharges on these items leaves a 1.0 residual.
NET_PRICE = np.array([25.0, 50.0, 0.0])  # DSL, Fiber optic, No
PHONE_PRICE, EXTRA_LINE_PRICE, ADD_ON_PRICE, PLAN_PRICE = 20.0, 5.0, 5.0, 10.0
MIN_FEE, MAX_FEE = 18.25, 118.75
# Mean rebuffer events a week by internet service: DSL links stall most.
REBUFFER_RATE = np.array([2.2, 0.8, 1.4])
ONE_DECIMAL_COLUMNS = ("watch_hours_30d", "avg_session_mins_7d", "ticket_avg_resolution_hrs_90d")
# Month-to-month persistence of a user's engagement (AR(1) coefficient).
ENGAGEMENT_MEMORY = 0.8


@dataclass(frozen=True)
class MonthSummary:
    as_of: date
    users: int
    new_users: int
    churned: int  # users who churn in the month after as_of (churn_label true)
    churn_rate: float
    shifted: bool  # the month the distribution shift starts


def as_of_dates(start: str, months: int) -> list[date]:
    """The last day of `months` consecutive months, starting with the month-end `start`."""
    first = date.fromisoformat(start)
    if first.day != calendar.monthrange(first.year, first.month)[1]:
        raise ValueError(f"start must be the last day of a month (e.g. 2024-01-31), got {start}")
    ends = []
    for offset in range(months):
        year, month0 = divmod(first.year * 12 + first.month - 1 + offset, 12)
        ends.append(date(year, month0 + 1, calendar.monthrange(year, month0 + 1)[1]))
    return ends


def generate_landing(
    out_dir: Path,
    users: int = 7000,
    months: int = 12,
    seed: int = 42,
    start: str = "2024-01-31",
    progress: Callable[[str], None] | None = None,
) -> list[MonthSummary]:
    """Write `<out_dir>/<AS_OF>/*.csv` for each month and return one summary per month."""
    if users < 1 or months < 1:
        raise ValueError(f"users and months must be at least 1, got {users=} and {months=}")
    rng = np.random.default_rng(seed)
    summaries: list[MonthSummary] = []
    issued = 0  # user numbers handed out so far
    survivors: Users = {}
    for index, as_of in enumerate(as_of_dates(start, months)):
        if index == 0:
            population = _new_users(rng, _initial_tenure(rng, users), as_of, issued + 1)
            issued += _count(population)
        else:
            survivors = _age_one_month(rng, survivors)
            # Signups refill the base to about `users`, with Poisson noise.
            signups = np.zeros(rng.poisson(max(users - _count(survivors), 0)), dtype=np.int64)
            newcomers = _new_users(rng, signups, as_of, issued + 1)
            issued += _count(newcomers)
            population = {k: np.concatenate([survivors[k], newcomers[k]]) for k in survivors}

        features = _observe_month(rng, population, shifted=index >= SHIFTED_MONTH_INDEX)
        churns = _draw_churn(rng, population, features)
        _write_month(Path(out_dir) / as_of.isoformat(), population | features, churns)

        summaries.append(_summarize(as_of, population, churns, index == SHIFTED_MONTH_INDEX))
        if progress is not None:
            progress(_progress_line(summaries[-1]))
        survivors = _select(population, ~churns)
    return summaries


def _count(users: Users) -> int:
    return len(users["user_id"])


def _select(users: Users, mask: np.ndarray) -> Users:
    return {name: values[mask] for name, values in users.items()}


def _summarize(as_of: date, population: Users, churns: np.ndarray, shifted: bool) -> MonthSummary:
    return MonthSummary(
        as_of=as_of,
        users=_count(population),
        new_users=int((population["months_active"] == 0).sum()),
        churned=int(churns.sum()),
        churn_rate=round(float(churns.mean()), 4),
        shifted=shifted,
    )


def _progress_line(summary: MonthSummary) -> str:
    shift_note = " (distribution shift starts)" if summary.shifted else ""
    return (
        f"{summary.as_of}: {summary.users} users, {summary.new_users} new, "
        f"{summary.churned} churn next month ({summary.churn_rate:.1%}){shift_note}"
    )


# --- population -------------------------------------------------------------------------------


def _initial_tenure(rng: np.random.Generator, count: int) -> np.ndarray:
    """Telco-like tenures; about one month's churn worth of users signed up this month."""
    lows, highs, shares = (np.array(column) for column in zip(*TENURE_BINS, strict=True))
    bins = rng.choice(len(TENURE_BINS), size=count, p=shares / shares.sum())
    tenure = lows[bins] + np.floor(rng.random(count) * (highs[bins] - lows[bins] + 1))
    new_this_month = rng.random(count) < TARGET_MONTHLY_CHURN
    return np.where(new_this_month, 0, tenure).astype(np.int64)


def _new_users(
    rng: np.random.Generator, tenure: np.ndarray, as_of: date, first_number: int
) -> Users:
    """Users with the given tenures at `as_of`: demographics, plan, and hidden traits."""
    count = len(tenure)
    has_family = rng.random(count) < 0.483
    contract = _pick_by_group(
        rng,
        np.searchsorted([t for t, _ in CONTRACT_MIX_BY_TENURE], tenure),
        [mix for _, mix in CONTRACT_MIX_BY_TENURE],
    )
    signup_group = len(NET_MIX_BY_CONTRACT)
    net = _pick_by_group(
        rng,
        np.where(tenure == 0, signup_group, contract),
        (*NET_MIX_BY_CONTRACT, SIGNUP_NET_MIX),
    )
    has_internet = net != 2
    users = {
        "user_id": _user_ids(first_number, count),
        "signup_date": _signup_dates(rng, tenure, as_of),
        "female": rng.random(count) < 0.495,
        "user_is_senior": rng.random(count) < 0.162,
        "has_family": has_family,
        # Telco: half of users with a partner have dependents, one in ten without.
        "has_dependents": rng.random(count) < np.where(has_family, 0.51, 0.10),
        "months_active": tenure,
        "contract": contract,
        "net": net,
        # Telco: paperless billing is most common with fiber and rare without internet.
        "paperless_billing": rng.random(count) < np.array([0.55, 0.77, 0.29])[net],
    }
    for name, shares in ADD_ON_SHARE_BY_CONTRACT.items():
        users[name] = has_internet & (rng.random(count) < np.array(shares)[contract])
    # Phone lines are not landing columns but are part of Telco's fee, as is a small residual.
    has_phone = ~has_internet | (net == 1) | (rng.random(count) < 0.72)
    extra_line = has_phone & (rng.random(count) < 0.47)
    users["base_fee"] = (
        PHONE_PRICE * has_phone + EXTRA_LINE_PRICE * extra_line + rng.normal(0.0, 1.0, count)
    )
    users["monthly_fee"] = _monthly_fee(users)
    paid_ratio = np.clip(rng.normal(1.0, 0.05, count), 0.7, 1.5)  # past fee changes
    users["total_paid"] = np.where(tenure > 0, tenure * users["monthly_fee"] * paid_ratio, np.nan)

    users["engagement"] = rng.normal(0.0, 1.0, count)
    users["previous_engagement"] = users["engagement"]
    users["line_quality"] = rng.normal(0.0, 1.0, count)  # higher means a worse connection
    # Electronic-check payers (paperless in Telco) fail payments more often.
    users["payment_risk"] = rng.normal(0.0, 1.0, count) + 0.4 * users["paperless_billing"]
    users["dissatisfaction"] = rng.normal(0.0, 1.0, count)  # never observed: label noise
    return users


def _user_ids(first_number: int, count: int) -> np.ndarray:
    numbers = range(first_number, first_number + count)
    return np.array([f"u{number:07d}" for number in numbers], dtype=object)


def _signup_dates(rng: np.random.Generator, tenure: np.ndarray, as_of: date) -> np.ndarray:
    """A day within the month `tenure` months before `as_of`."""
    signup_month = np.datetime64(as_of, "M") - tenure.astype("timedelta64[M]")
    first_day = signup_month.astype("datetime64[D]")
    days_in_month = ((signup_month + 1).astype("datetime64[D]") - first_day).astype(np.int64)
    offset = np.floor(rng.random(len(tenure)) * days_in_month).astype("timedelta64[D]")
    return first_day + offset


def _pick_by_group(
    rng: np.random.Generator, groups: np.ndarray, mixes: Sequence[Sequence[float]]
) -> np.ndarray:
    """Category codes drawn from the mix of each row's group (inverse CDF, vectorized)."""
    cumulative = np.cumsum(np.array(mixes, dtype=float), axis=1)
    cumulative /= cumulative[:, -1:]
    draws = rng.random(len(groups))
    return (draws[:, None] > cumulative[groups]).sum(axis=1).astype(np.int64)


def _monthly_fee(users: Users) -> np.ndarray:
    """Telco's price list applied to the user's internet service, add-ons and plans."""
    add_ons = sum(users[name].astype(np.int64) for name in ADD_ONS)
    plans = sum(users[name].astype(np.int64) for name in PLANS)
    fee = users["base_fee"] + NET_PRICE[users["net"]] + ADD_ON_PRICE * add_ons + PLAN_PRICE * plans
    return np.round(np.clip(fee, MIN_FEE, MAX_FEE), 2)


def _age_one_month(rng: np.random.Generator, survivors: Users) -> Users:
    """Survivors one month later: older, slowly drifting usage, a few plan changes."""
    users = dict(survivors)  # new arrays replace old ones; the input is never modified
    count = _count(users)
    users["months_active"] = survivors["months_active"] + 1
    users["previous_engagement"] = survivors["engagement"]
    noise_scale = np.sqrt(1.0 - ENGAGEMENT_MEMORY**2)  # keeps engagement ~ N(0, 1)
    users["engagement"] = ENGAGEMENT_MEMORY * survivors["engagement"] + rng.normal(
        0.0, noise_scale, count
    )
    # About 3% of internet users add or drop one add-on or plan each month: fees change.
    changes = (survivors["net"] != 2) & (rng.random(count) < 0.03)
    choice = rng.integers(0, len(ADD_ONS + PLANS), count)
    for position, name in enumerate(ADD_ONS + PLANS):
        users[name] = survivors[name] ^ (changes & (choice == position))
    users["monthly_fee"] = _monthly_fee(users)
    users["total_paid"] = np.nan_to_num(survivors["total_paid"]) + users["monthly_fee"]
    return users


# --- one month of observations and labels -----------------------------------------------------


def _observe_month(rng: np.random.Generator, users: Users, shifted: bool) -> Users:
    """The usage, payment and support aggregates the landing files report at AS_OF."""
    count = _count(users)
    engagement = users["engagement"]
    quality = users["line_quality"]
    net = users["net"]
    plans = users["plan_stream_tv"].astype(np.int64) + users["plan_stream_movies"]
    support = users["add_on_support"]
    household = 0.5 * users["has_family"] + 0.6 * users["has_dependents"]

    log_hours = 2.9 + 0.5 * engagement + 0.2 * plans + rng.normal(0.0, 0.2, count)
    log_minutes = 3.3 + 0.25 * engagement + rng.normal(0.0, 0.2, count)
    device_share = _sigmoid(-1.6 + household + 0.3 * engagement + 0.2 * plans)
    rebuffer_rate = REBUFFER_RATE[net] * np.exp(0.5 * quality)
    failed_payment_rate = np.exp(-2.3 + 0.8 * users["payment_risk"])
    tickets = rng.poisson(np.exp(-1.4 + 0.4 * quality + 0.3 * (net == 1) - 0.3 * support))
    # At least half an hour; tech-support customers get answers sooner.
    resolution_hours = 0.5 + rng.gamma(2.0, 10.0, count) * np.where(support, 0.6, 1.0)
    features = {
        "watch_hours_30d": np.exp(log_hours),
        "avg_session_mins_7d": np.exp(log_minutes),
        "unique_devices_30d": 1 + rng.binomial(5, device_share),
        "skips_7d": rng.poisson(np.exp(1.4 - 0.35 * engagement)),
        "rebuffer_events_7d": rebuffer_rate,
        "failed_payments_90d": rng.poisson(failed_payment_rate),
        "support_tickets_90d": tickets,
        "ticket_avg_resolution_hrs_90d": np.where(tickets > 0, resolution_hours, 0.0),
    }
    if shifted:
        features["watch_hours_30d"] *= SHIFT_WATCH_FACTOR
        features["avg_session_mins_7d"] *= SHIFT_SESSION_FACTOR
        features["rebuffer_events_7d"] *= SHIFT_REBUFFER_FACTOR
    features["rebuffer_events_7d"] = rng.poisson(features["rebuffer_events_7d"])
    for name in ONE_DECIMAL_COLUMNS:
        features[name] = np.round(features[name], 1)
    return features


def _draw_churn(rng: np.random.Generator, users: Users, features: Users) -> np.ndarray:
    """Who churns in the next month: a hidden logistic model, calibrated to the target rate.

    Contract, tenure and engagement weigh most, as in Telco; contract, demographics, the
    month's change in engagement and a never-observed dissatisfaction are not among the
    model's 14 features, so a good model reaches an AUC in the high 0.8s, not 1.0.
    """
    contract = users["contract"]
    engagement = users["engagement"]
    score = (
        1.2 * (contract == 0)
        - 1.2 * (contract == 2)
        - 0.7 * np.log1p(users["months_active"])
        + 0.8 * (users["net"] == 1)
        + 0.012 * (users["monthly_fee"] - 65.0)
        + 0.7 * features["failed_payments_90d"]
        + 0.5 * features["support_tickets_90d"]
        + 0.02 * features["ticket_avg_resolution_hrs_90d"]
        - 1.2 * engagement
        - 0.6 * (engagement - users["previous_engagement"])
        + 0.2 * features["rebuffer_events_7d"]
        + 0.3 * users["paperless_billing"]
        + 0.3 * users["user_is_senior"]
        - 0.2 * users["has_family"]
        + 0.3 * users["dissatisfaction"]
        + rng.normal(0.0, 0.2, _count(users))
    )
    probability = _sigmoid(score + _intercept_for_rate(score, TARGET_MONTHLY_CHURN))
    return rng.random(_count(users)) < probability


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """The shift of `score` whose mean churn probability is `rate` (bisection)."""
    low, high = -20.0, 20.0
    for _ in range(40):
        middle = (low + high) / 2
        if _sigmoid(score + middle).mean() < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --- CSV text ---------------------------------------------------------------------------------

BOOL_COLUMNS = ("user_is_senior", "has_family", "has_dependents", "paperless_billing")
INT_COLUMNS = (
    "months_active",
    "unique_devices_30d",
    "skips_7d",
    "rebuffer_events_7d",
    "failed_payments_90d",
    "support_tickets_90d",
)
_BOOL_TEXT = np.array(["false", "true"], dtype=object)


def _write_month(folder: Path, columns: Users, churns: np.ndarray) -> None:
    """One CSV per landing table, columns in contract order, then the month's manifest."""
    text = _column_text(columns, churns)
    folder.mkdir(parents=True, exist_ok=True)
    for table in LANDING_TABLES:
        _write_csv(folder / table.file, table.column_names, [text[c] for c in table.column_names])
    write_manifest(folder)  # last: the month is complete for readers only now


def _column_text(columns: Users, churns: np.ndarray) -> dict[str, np.ndarray]:
    """Every landing column of the month as an array of CSV cell strings."""
    text = {
        "user_id": columns["user_id"],
        "signup_date": _date_text(columns["signup_date"]),
        "user_gender": np.array(["Male", "Female"], dtype=object)[columns["female"].astype(int)],
        "contract_type": np.array(CONTRACT_TYPES, dtype=object)[columns["contract"]],
        "net_service": np.array(NET_SERVICES, dtype=object)[columns["net"]],
        "monthly_fee": _decimal_text(columns["monthly_fee"], 2),
        "total_paid": _decimal_text(columns["total_paid"], 2),
        "churn_label": _BOOL_TEXT[churns.astype(int)],
    }
    for name in (*BOOL_COLUMNS, *ADD_ONS, *PLANS):
        text[name] = _BOOL_TEXT[columns[name].astype(int)]
    for name in INT_COLUMNS:
        text[name] = _int_text(columns[name])
    for name in ONE_DECIMAL_COLUMNS:
        text[name] = _decimal_text(columns[name], 1)
    return text


def _int_text(values: np.ndarray) -> np.ndarray:
    """Small non-negative integers as text, through a lookup table (faster than str() per cell)."""
    values = values.astype(np.int64)
    if values.size == 0:
        return values.astype(object)
    table = np.arange(values.max() + 1).astype(str).astype(object)
    return table[values]


def _decimal_text(values: np.ndarray, decimals: int) -> np.ndarray:
    """Fixed-point text ("19.50"), NaN as a blank cell; each distinct value is formatted once."""
    unit = 10**decimals
    scaled = np.where(np.isnan(values), -1, np.rint(np.nan_to_num(values) * unit)).astype(np.int64)
    distinct, position = np.unique(scaled, return_inverse=True)
    labels = [f"{v // unit}.{v % unit:0{decimals}d}" if v >= 0 else "" for v in distinct.tolist()]
    return np.array(labels, dtype=object)[position]


def _date_text(days: np.ndarray) -> np.ndarray:
    distinct, position = np.unique(days, return_inverse=True)
    return np.datetime_as_string(distinct, unit="D").astype(object)[position]


# Rows turned into text at a time: the text of a whole million-user file is never held at once.
CSV_CHUNK_ROWS = 100_000


def _write_csv(path: Path, header: list[str], columns: list[np.ndarray]) -> None:
    """Plain CSV: no quoting is needed, since no cell holds a comma, quote or newline."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(",".join(header) + "\n")
        for start in range(0, len(columns[0]), CSV_CHUNK_ROWS):
            chunk = (column[start : start + CSV_CHUNK_ROWS].tolist() for column in columns)
            out.write("\n".join(map(",".join, zip(*chunk, strict=True))) + "\n")
