"""Uploads: presigned form POSTs for audio above the inline limit, and processing that starts by itself.

``POST /v1/uploads`` answers with where to POST the file (S3 presigned POST in the cloud, the local
server's own upload URL locally) and a ``file_id`` every processing route accepts. With a ``process``
spec, the finished upload starts a task by itself: S3's ObjectCreated event reaches the ingest
function, which submits the task under an id derived from bucket, key and version, so a duplicated
event starts nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

from pydantic import BaseModel

from earshot.blob_layout import inbox_key, upload_record_key
from earshot.errors import InvalidRequestError, NotFoundError
from earshot.ports import PresignedUpload, Principal
from earshot.runtime import Runtime
from earshot.schemas import UploadProcess as ProcessSpec
from earshot.schemas import UploadRequestBody as UploadRequest
from earshot.services.charged_run import AudioPayload

MB = 1024 * 1024
UPLOAD_URL_TTL_SEC = 3600


class UploadRecord(BaseModel):
    id: str
    account_id: str
    key_id: str = ""  # the API key that asked for the upload (its revocation stops the processing)
    key: str
    filename: str
    bytes: int
    purpose: str
    process: ProcessSpec | None
    retain: bool
    created_at: int
    expires_at: int


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.rsplit("/", 1)[-1]).strip("._") or "audio"
    return name[:100]


def process_options(spec: ProcessSpec) -> dict[str, Any]:
    return {**spec.options, **({"model": spec.model} if spec.model else {})}


def create_upload(
    runtime: Runtime, principal: Principal, request: UploadRequest
) -> tuple[UploadRecord, PresignedUpload]:
    """Store the upload record and sign its form. A ``process`` spec must have been planned already (api)."""
    if request.process is not None and request.process.callback_url:  # the policy of every other callback_url
        from earshot.url_policy import check_caller_url

        check_caller_url(
            request.process.callback_url, param="process.callback_url", settings=runtime.settings, unresolved_ok=True
        )
    file_id = f"file-{secrets.token_hex(12)}"
    now = int(time.time())
    record = UploadRecord(
        id=file_id,
        account_id=principal.account_id,
        key_id=principal.key_id,
        key=inbox_key(principal.account_id, file_id, _safe_name(request.filename)),
        filename=request.filename,
        bytes=request.bytes,
        purpose=request.purpose,
        process=request.process,
        retain=request.retain,
        created_at=now,
        expires_at=now + UPLOAD_URL_TTL_SEC,
    )
    runtime.blobs.put(upload_record_key(file_id), record.model_dump_json().encode(), content_type="application/json")
    presigned = runtime.blobs.presign_upload(record.key, max_bytes=request.bytes, expires_in=UPLOAD_URL_TTL_SEC)
    return record, presigned


def load_upload(runtime: Runtime, file_id: str) -> UploadRecord | None:
    if not re.fullmatch(r"file-[0-9a-f]{24}", file_id):
        return None
    try:
        return UploadRecord.model_validate_json(runtime.blobs.get(upload_record_key(file_id)))
    except NotFoundError:
        return None


def audio_from_file_id(runtime: Runtime, principal: Principal, file_id: str) -> AudioPayload:
    """The uploaded audio of ``file_id``; another account's file is indistinguishable from a missing one."""
    record = load_upload(runtime, file_id)
    if record is None or record.account_id != principal.account_id:
        raise NotFoundError(f"no file {file_id}", param="file_id")
    try:
        return AudioPayload(runtime.blobs.get(record.key), record.filename)
    except NotFoundError as exc:
        raise InvalidRequestError(f"file {file_id} has not been uploaded yet", param="file_id") from exc


def upload_task_id(record: UploadRecord) -> str | None:
    """The id of the task a self-processing upload starts, known when the upload is created (and returned
    then). One upload starts one task: a redelivered event, or the same file posted again, starts nothing."""
    if record.process is None:
        return None
    digest = hashlib.sha256(f"{record.account_id}/{record.id}".encode()).hexdigest()[:8]
    return f"task-{record.process.kind}-{record.created_at}-{digest}"


def s3_event_records(event: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, version) of each ObjectCreated record in an S3 event notification."""
    found = []
    for record in event.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        found.append(
            (
                str((s3.get("bucket") or {}).get("name", "")),
                str(obj.get("key", "")),
                str(obj.get("versionId") or obj.get("sequencer") or ""),
            )
        )
    return found


def describe(record: UploadRecord, presigned: PresignedUpload) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "upload",
        "filename": record.filename,
        "bytes": record.bytes,
        "purpose": record.purpose,
        "status": "pending",
        "created_at": record.created_at,
        "expires_at": presigned.expires_at,
        "upload": {"url": presigned.url, "method": "POST", "fields": presigned.fields, "file_field": "file"},
        "process": json.loads(record.process.model_dump_json()) if record.process else None,
        "task_id": upload_task_id(record),
        "retain": record.retain,
    }


def upload_blob(runtime: Runtime, principal: Principal, file_id: str) -> tuple[str, bool]:
    """(blob key, delete after processing) of the caller's finished upload ``file_id``."""
    record = load_upload(runtime, file_id)
    if record is None or record.account_id != principal.account_id:
        raise NotFoundError(f"no file {file_id}", param="file_id")
    if not runtime.blobs.exists(record.key):
        raise InvalidRequestError(f"file {file_id} has not been uploaded yet", param="file_id")
    return record.key, not record.retain
