"""Debit before the engine runs, refund if it fails: the one place a request's money moves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools.metrics import MetricUnit

from earshot.errors import EngineError, ProviderError, ProviderTimeoutError
from earshot.observability import logger, metrics
from earshot.ports import AccountStore, Charge, LedgerEntry


@contextmanager
def charged(store: AccountStore, charge: Charge) -> Iterator[LedgerEntry]:
    """Debit ``charge`` (402 when the balance does not cover it); refund it if the body raises."""
    entry = store.debit(charge)
    logger.info(
        "debited",
        extra={"request_id": charge.request_id, "amount_micro_usd": charge.amount_micro_usd, "model": charge.model},
    )
    try:
        yield entry
    except BaseException as exc:
        store.refund(request_id=charge.request_id, reason=f"refund: {type(exc).__name__}")
        logger.info("refunded", extra={"request_id": charge.request_id, "amount_micro_usd": charge.amount_micro_usd})
        if isinstance(exc, (ProviderError, ProviderTimeoutError, EngineError)):
            metrics.add_metric(name="ProviderErrors", unit=MetricUnit.Count, value=1)  # the stage alarms on it
        raise
