"""``POST /v1/audio/understand``: a question about how the audio sounds."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import form_audio, process
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import UnderstandForm


def create_understanding(request: ApiRequest) -> Response[str]:
    runtime = get_runtime()
    request.principal()
    parsed = read_form(request, UnderstandForm, limit=runtime.settings.max_inline_bytes, file_required=False)
    form = parsed.form

    options = form.model_dump(mode="json", exclude={"file", "url", "file_id"})
    return process(
        request,
        kind="understand",
        options=options,
        audio=form_audio(request, form, parsed.filename),
        audio_url=form.url,
        file_id=form.file_id,
        controls=parsed.controls,
    )
