"""``GET /v1/models``: the catalog, shaped like OpenAI's models list, with whether each model is live here."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.adapters.credentials import liveness
from earshot.billing import usd
from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import ModelList, ModelOut

_CATALOG_EPOCH = 1_767_225_600  # 2026-01-01: catalog entries carry no creation time of their own


def list_models(request: ApiRequest) -> Response[str]:
    request.principal()
    runtime = get_runtime()
    models = []
    for model in runtime.catalog.models:
        live = liveness(model, runtime.settings)
        models.append(
            ModelOut(
                id=model.sku,
                created=_CATALOG_EPOCH,
                owned_by="earshot",
                kind=model.kind,
                aliases=model.aliases,
                price_per_minute_usd=usd(model.price_micro_usd_per_minute),
                price_per_minute_micro_usd=model.price_micro_usd_per_minute,
                languages=model.languages,
                description=model.description,
                live=live.live,
                setup=live.setup,
            )
        )
    return json_response(ModelList(data=models))
