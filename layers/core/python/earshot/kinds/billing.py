"""How a charge is shown to clients: the ``billing`` block and the ``X-Earshot-*`` headers."""

from __future__ import annotations

from typing import Any

from earshot.billing import usd, usd_text
from earshot.schemas import Billing
from earshot.services.charged_run import ChargedRun


def billing_block(outcome: ChargedRun[Any]) -> Billing:
    cost = outcome.cost_micro_usd
    balance = outcome.debit.balance_after_micro_usd
    return Billing(
        duration_sec=round(outcome.billed_seconds, 3),
        duration_source=outcome.duration_source,
        billable_minutes=outcome.debit.billable_minutes or 0,
        cost_usd=usd(cost),
        cost_micro_usd=cost,
        balance_usd=usd(balance),
        balance_micro_usd=balance,
    )


def billing_headers(outcome: ChargedRun[Any]) -> dict[str, str]:
    return {
        "X-Earshot-Model": outcome.model.sku,
        "X-Earshot-Duration-Sec": f"{outcome.billed_seconds:.3f}",
        "X-Earshot-Billable-Minutes": str(outcome.debit.billable_minutes or 0),
        "X-Earshot-Cost-USD": usd_text(outcome.cost_micro_usd),
        "X-Earshot-Balance-USD": usd_text(outcome.debit.balance_after_micro_usd),
    }
