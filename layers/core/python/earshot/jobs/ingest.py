"""An upload that asked to be processed: start its task once S3 has stored it (the ingest function)."""

from __future__ import annotations

from urllib.parse import unquote_plus

from earshot.blob_layout import INBOX_KEY
from earshot.errors import EarshotError
from earshot.jobs.submit import submit_task
from earshot.kinds import prepare
from earshot.observability import logger
from earshot.ports import Principal, Task
from earshot.runtime import Runtime
from earshot.services.account_gate import UNKNOWN_KEY, ensure_may_start
from earshot.services.uploads import load_upload, process_options, upload_task_id


def ingest_object(runtime: Runtime, *, bucket: str, key: str, version: str = "") -> Task | None:
    """Start the task an upload asked for (its id is `upload_task_id`). A duplicate event starts nothing."""
    key = unquote_plus(key)  # S3 event keys are URL-encoded
    match = INBOX_KEY.match(key)
    record = load_upload(runtime, match.group("file_id")) if match else None
    if record is None or record.key != key or record.process is None:
        logger.info("upload stored; nothing to process", extra={"key": key})
        return None
    try:  # the account may have changed since the upload URL was issued: start nothing, charge nothing
        ensure_may_start(runtime, record.account_id, record.key_id or UNKNOWN_KEY)
    except EarshotError as refused:
        logger.info("upload not processed", extra={"key": key, "code": refused.code, "reason": refused.message})
        return None
    spec = record.process
    task_id = upload_task_id(record)
    model = prepare(runtime, spec.kind, process_options(spec), deadline_sec=60.0).plan.model.sku
    return submit_task(
        runtime,
        Principal(account_id=record.account_id, key_id=record.key_id or UNKNOWN_KEY),
        kind=spec.kind,
        model=model,
        options=process_options(spec),
        audio_blob_key=key,
        delete_after=not record.retain,
        callback_url=spec.callback_url,
        task_id=task_id,
        filename=record.filename,
    )
