"""Validation of landing files: every contract breach is quarantined with a reason."""

from __future__ import annotations

import pytest

from streamflow_dagster.landing.contract import TABLES_BY_NAME
from streamflow_dagster.landing.validate import LandingFileError, parse_landing_file

SUBS = TABLES_BY_NAME["subscriptions"]
USERS = TABLES_BY_NAME["users"]
SUBS_HEADER = ",".join(SUBS.column_names)


def subs_row(
    user_id="u1",
    months_active="3",
    monthly_fee="29.85",
    total_paid="89.55",
    net_service="dsl",
    tv="true",
    movies="false",
    contract="month_to_month",
) -> str:
    return (
        f"{user_id},{months_active},{tv},{movies},{contract},true,{monthly_fee},"
        f"{total_paid},{net_service},false,false,false,false"
    )


def write(tmp_path, text: str | bytes, name="subscriptions.csv"):
    path = tmp_path / name
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def parse(tmp_path, text, table=SUBS):
    return parse_landing_file(write(tmp_path, text, table.file), table)


def reasons(parsed) -> list[str]:
    return list(parsed.rejections["reason"])


def test_clean_file_is_typed(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row()}\n{subs_row('u2')}\n")
    assert len(parsed.accepted) == 2 and parsed.rejections.empty
    row = parsed.accepted.to_pandas().iloc[0]
    assert row["months_active"] == 3 and row["monthly_fee"] == pytest.approx(29.85)
    assert bool(row["plan_stream_tv"]) is True and bool(row["plan_stream_movies"]) is False


def test_empty_file_is_one_rejection(tmp_path):
    parsed = parse(tmp_path, "")
    assert parsed.accepted.num_rows == 0
    assert reasons(parsed) == [
        f"subscriptions.csv is empty: expected a header row with {SUBS.column_names}"
    ]
    assert parsed.reject_rate == 1.0


def test_header_only_file(tmp_path):
    parsed = parse(tmp_path, SUBS_HEADER + "\n")
    assert parsed.accepted.num_rows == 0
    assert reasons(parsed) == ["subscriptions.csv has a header but no data rows"]


def test_missing_required_column_rejects_every_row(tmp_path):
    header = SUBS_HEADER.replace(",monthly_fee", "")
    row = subs_row().replace(",29.85", "")
    parsed = parse(tmp_path, f"{header}\n{row}\n{row.replace('u1', 'u2')}\n")
    assert parsed.missing_columns == ["monthly_fee"]
    assert parsed.accepted.num_rows == 0
    assert reasons(parsed) == ["missing required column(s): monthly_fee"] * 2
    assert list(parsed.rejections["line_number"]) == [2, 3]


def test_extra_column_is_ignored_and_reported(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER},coupon\n{subs_row()},X1\n")
    assert parsed.extra_columns == ["coupon"]
    assert len(parsed.accepted) == 1 and parsed.rejections.empty
    assert "coupon" not in parsed.accepted.column_names


def test_identical_duplicate_keeps_first(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row()}\n{subs_row('u2')}\n{subs_row()}\n")
    assert list(parsed.accepted.to_pandas()["user_id"]) == ["u1", "u2"]
    assert reasons(parsed) == ["user_id: 'u1' duplicates line 2 (identical record)"]
    assert list(parsed.rejections["line_number"]) == [4]


def test_conflicting_duplicates_are_all_rejected(tmp_path):
    text = f"{SUBS_HEADER}\n{subs_row()}\n{subs_row('u2')}\n{subs_row(monthly_fee='99.00')}\n"
    parsed = parse(tmp_path, text)
    assert list(parsed.accepted.to_pandas()["user_id"]) == ["u2"]
    assert reasons(parsed) == ["user_id: 'u1' appears on lines 2, 4 with conflicting values"] * 2


@pytest.mark.parametrize(
    ("contract", "net_service", "stored"),
    [
        ("Month-to-month", "DSL", ("Month-to-month", "DSL")),  # Telco's own spelling
        ("month_to_month", "fiber_optic", ("Month-to-month", "Fiber optic")),
        (" ONE YEAR ", "Fiber-Optic", ("One year", "Fiber optic")),
        ("two-year", "No", ("Two year", "No")),
        ("Two__Year", "none", ("Two year", "No")),  # the earlier canonical value
        ("one_year", "No internet service", ("One year", "No")),
    ],
)
def test_categorical_spellings_are_stored_canonical(tmp_path, contract, net_service, stored):
    row = subs_row(contract=contract, net_service=net_service)
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{row}\n")
    assert parsed.rejections.empty
    accepted = parsed.accepted.to_pandas().iloc[0]
    assert (accepted["contract_type"], accepted["net_service"]) == stored


@pytest.mark.parametrize("value", ["Fiber", "fiberoptic", "DSL2", "No service", "n/a", "-"])
def test_near_miss_categoricals_are_still_quarantined(tmp_path, value):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row(net_service=value)}\n")
    assert parsed.accepted.num_rows == 0
    assert reasons(parsed) == [
        f"net_service: {value!r} is not one of DSL, Fiber optic, No (or none, No internet service)"
    ]


def test_gender_accepts_any_case(tmp_path):
    header = ",".join(USERS.column_names)
    rows = "u1,2024-01-02,female,no,no,no\nu2,2024-01-02,MALE ,no,no,no\n"
    parsed = parse(tmp_path, f"{header}\n{rows}", USERS)
    assert parsed.accepted.to_pandas()["user_gender"].tolist() == ["Female", "Male"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (subs_row(user_id=""), "user_id: blank but required"),
        (subs_row(user_id="  "), "user_id: blank but required"),
        (subs_row(months_active="three"), "months_active: 'three' is not an integer"),
        (subs_row(months_active="2.5"), "months_active: '2.5' is not an integer"),
        (subs_row(monthly_fee="-5.00"), "monthly_fee: '-5.00' is negative"),
        (subs_row(monthly_fee="abc"), "monthly_fee: 'abc' is not a number"),
        (
            subs_row(net_service="satellite"),
            "net_service: 'satellite' is not one of DSL, Fiber optic, No "
            "(or none, No internet service)",
        ),
        (
            subs_row(tv="maybe"),
            "plan_stream_tv: 'maybe' is not a boolean (true/false, yes/no, 1/0)",
        ),
        (
            subs_row(contract="weekly"),
            "contract_type: 'weekly' is not one of Month-to-month, One year, Two year",
        ),
    ],
)
def test_bad_values_are_rejected_with_column_and_value(tmp_path, row, reason):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row('ok')}\n{row}\n")
    assert list(parsed.accepted.to_pandas()["user_id"]) == ["ok"]
    assert reasons(parsed) == [reason]
    assert list(parsed.rejections["line_number"]) == [3]
    assert parsed.rejections["raw_record"].iloc[0] == row


def test_several_problems_in_one_row_are_all_named(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row(months_active='x', monthly_fee='-1')}\n")
    assert reasons(parsed) == [
        "months_active: 'x' is not an integer; monthly_fee: '-1' is negative"
    ]


def test_blank_total_paid_is_accepted_as_null(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row(months_active='0', total_paid='')}\n")
    assert parsed.rejections.empty
    assert parsed.accepted.to_pandas()["total_paid"].isna().all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes", True), ("no", False), ("1", True), ("0", False), ("TRUE", True), ("false", False)],
)
def test_boolean_spellings_are_accepted(tmp_path, text, expected):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row(tv=text)}\n")
    assert parsed.rejections.empty
    assert bool(parsed.accepted.to_pandas()["plan_stream_tv"].iloc[0]) is expected


def test_bom_and_crlf_are_accepted(tmp_path):
    text = "\ufeff" + f"{SUBS_HEADER}\r\n{subs_row()}\r\n{subs_row('u2')}\r\n"
    parsed = parse(tmp_path, text.encode("utf-8"))
    assert parsed.rejections.empty and list(parsed.accepted.to_pandas()["user_id"]) == ["u1", "u2"]
    assert parsed.missing_columns == []


def test_quoted_field_with_comma_is_accepted(tmp_path):
    header = ",".join(USERS.column_names)
    text = f'{header}\n"u,1",2024-01-02,female,no,yes,no\n'
    parsed = parse(tmp_path, text, USERS)
    assert parsed.rejections.empty and list(parsed.accepted.to_pandas()["user_id"]) == ["u,1"]


def test_truncated_last_line_is_rejected(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row()}\nu2,4,true,fal")
    assert list(parsed.accepted.to_pandas()["user_id"]) == ["u1"]
    assert reasons(parsed) == ["expected 13 fields as in the header, found 4 (truncated line?)"]
    assert parsed.rejections["raw_record"].iloc[0] == "u2,4,true,fal"
    assert list(parsed.rejections["line_number"]) == [3]


def test_invalid_date_is_rejected(tmp_path):
    header = ",".join(USERS.column_names)
    parsed = parse(tmp_path, f"{header}\nu1,2024-02-30,female,no,no,no\n", USERS)
    assert reasons(parsed) == ["signup_date: '2024-02-30' is not a date (YYYY-MM-DD)"]


def test_not_utf8_raises_with_file_and_byte(tmp_path):
    with pytest.raises(LandingFileError, match=r"subscriptions.csv, line 2: not valid UTF-8"):
        parse(tmp_path, f"{SUBS_HEADER}\n".encode() + b"u\xff1,1\n")


def test_line_numbers_follow_blank_lines(tmp_path):
    parsed = parse(
        tmp_path, f"{SUBS_HEADER}\n\n{subs_row()}\n\n{subs_row('', months_active='1')}\n"
    )
    assert list(parsed.rejections["line_number"]) == [5]


def test_integer_too_large_for_bigint_is_rejected(tmp_path):
    parsed = parse(tmp_path, f"{SUBS_HEADER}\n{subs_row(months_active='99999999999999999999')}\n")
    assert reasons(parsed) == [
        "months_active: '99999999999999999999' is out of range for an integer"
    ]


def test_line_numbers_after_a_ragged_row(tmp_path):
    text = f"{SUBS_HEADER}\n{subs_row()}\nu2,1\n{subs_row('u3')}\n{subs_row('u4', tv='x')}\n"
    parsed = parse(tmp_path, text)
    assert list(parsed.rejections["line_number"]) == [3, 5]
    assert list(parsed.accepted.to_pandas()["user_id"]) == ["u1", "u3"]
