"""The billing rules: what a duration costs. Money is integer micro-USD everywhere."""

from __future__ import annotations

import math

from earshot.catalog import CatalogModel

MICRO = 1_000_000


def duration_ms(seconds: float) -> int:
    """Metered seconds to whole milliseconds (the unit the ledger stores)."""
    return max(0, round(seconds * 1000))


def billable_minutes(seconds: float) -> int:
    """``max(1, ceil(seconds / 60))``, computed on whole milliseconds so float noise never adds a minute."""
    return max(1, math.ceil(duration_ms(seconds) / 60_000))


def cost_micro_usd(model: CatalogModel, seconds: float) -> int:
    """The catalog price: a per-request base (extraction has one) plus each started minute."""
    return model.base_price_micro_usd + billable_minutes(seconds) * model.price_micro_usd_per_minute


# The extract-audio contract counts credits: 10 per request plus 2 per started minute.
EXTRACT_BASE_CREDITS = 10
EXTRACT_CREDITS_PER_MINUTE = 2


def extraction_credits(seconds: float) -> int:
    return EXTRACT_BASE_CREDITS + EXTRACT_CREDITS_PER_MINUTE * billable_minutes(seconds)


def usd(micro_usd: int) -> float:
    """For display in JSON bodies only; balances and ledgers stay integers."""
    return micro_usd / MICRO


def usd_text(micro_usd: int) -> str:
    """Exact decimal text for headers: 900 -> '0.000900'."""
    sign = "-" if micro_usd < 0 else ""
    whole, frac = divmod(abs(micro_usd), MICRO)
    return f"{sign}{whole}.{frac:06d}"


def micro_from_usd_text(text: str) -> int:
    """Parse a decimal USD amount ('12.5', '0.0009') exactly into micro-USD."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a USD amount: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a USD amount: {text!r}")
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{text!r} has more precision than one micro-dollar")
    return int(micro)
