"""The billing rule: per started minute, at least one, in integer micro-USD."""

from __future__ import annotations

import pytest

from earshot.billing import billable_minutes, cost_micro_usd, micro_from_usd_text, usd_text
from earshot.catalog import CatalogModel

MODEL = CatalogModel(sku="m", kind="transcription", provider="embedded:whisper", price_micro_usd_per_minute=900)


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [
        (0.0, 1),
        (0.2, 1),
        (5.03, 1),
        (59.999, 1),
        (60.0, 1),
        (60.0004, 1),
        (60.001, 2),
        (61, 2),
        (3600, 60),
        (3600.5, 61),
    ],
)
def test_billable_minutes_round_up_per_started_minute(seconds: float, minutes: int) -> None:
    assert billable_minutes(seconds) == minutes


def test_float_noise_never_adds_a_minute() -> None:
    assert billable_minutes(0.1 * 600) == 1  # 60.00000000000001 s


def test_cost_is_minutes_times_price() -> None:
    assert cost_micro_usd(MODEL, 5.03) == 900
    assert cost_micro_usd(MODEL, 3600) == 54_000  # $0.054 for an hour, as the reference prices it


@pytest.mark.parametrize(
    ("micro", "text"), [(900, "0.000900"), (41_469_000, "41.469000"), (0, "0.000000"), (-5, "-0.000005")]
)
def test_usd_text_is_exact(micro: int, text: str) -> None:
    assert usd_text(micro) == text
    assert micro_from_usd_text(text) == micro


@pytest.mark.parametrize("bad", ["abc", "1e400x", "0.0000001", "nan", "inf", ""])
def test_usd_amounts_must_be_exact_micro_dollars(bad: str) -> None:
    with pytest.raises(ValueError):
        micro_from_usd_text(bad)
