"""``GET /v1/credits/balance`` and ``GET /v1/usage``: the caller's money."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.billing import usd
from earshot.errors import AuthError
from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.http.validation import parse_model
from earshot.ports import LedgerEntry
from earshot.runtime import get_runtime
from earshot.schemas import CreditBalance, LedgerEntryOut, UsageList, UsageQuery


def get_balance(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    account = get_runtime().store.get_account(principal.account_id)
    if account is None:
        raise AuthError("the API key's account no longer exists")
    return json_response(
        CreditBalance(
            account_id=account.id,
            balance_usd=usd(account.balance_micro_usd),
            balance_micro_usd=account.balance_micro_usd,
            audio_enabled=account.audio_enabled,
        )
    )


def _entry_out(entry: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.id,
        request_id=entry.request_id,
        kind=entry.kind,
        amount_usd=usd(entry.amount_micro_usd),
        amount_micro_usd=entry.amount_micro_usd,
        balance_after_usd=usd(entry.balance_after_micro_usd),
        balance_after_micro_usd=entry.balance_after_micro_usd,
        model=entry.model,
        duration_sec=entry.duration_ms / 1000 if entry.duration_ms is not None else None,
        billable_minutes=entry.billable_minutes,
        description=entry.description,
        created_at=entry.created_at,
    )


def list_usage(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    query = parse_model(UsageQuery, request.query)
    # One extra row tells whether another page exists.
    entries = get_runtime().store.list_ledger(principal.account_id, limit=query.limit + 1, before=query.before)
    page, has_more = entries[: query.limit], len(entries) > query.limit
    charged = sum(-e.amount_micro_usd for e in page if e.kind == "debit") - sum(
        e.amount_micro_usd for e in page if e.kind == "refund"
    )
    return json_response(
        UsageList(
            data=[_entry_out(e) for e in page],
            has_more=has_more,
            next_before=page[-1].id if has_more and page else None,
            total_charged_micro_usd=charged,
        )
    )
