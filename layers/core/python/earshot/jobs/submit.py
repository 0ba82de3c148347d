"""Submitting a job as an async task: store its audio, create the task, start the workflow."""

from __future__ import annotations

from typing import Any

from earshot.errors import IdempotencyConflictError
from earshot.ports import Principal, Task, new_task
from earshot.runtime import Runtime
from earshot.services.metered import AudioPayload

# Task kinds in ids are letters and digits only ("task-llm-...", "task-transcription-...").
INPUT_BLOB = "tasks/{task_id}/input"


def submit_task(
    runtime: Runtime,
    principal: Principal,
    *,
    kind: str,
    model: str,
    options: dict[str, Any],
    audio: AudioPayload | None = None,
    audio_url: str | None = None,
    audio_blob_key: str | None = None,
    callback_url: str | None = None,
    stream: bool = False,
    request_id: str = "",
    task_id: str | None = None,
    delete_after: bool = True,
    filename: str = "",
) -> Task:
    """Create a ``pending`` task for ``kind`` and start its workflow. The audio is stored, or its URL kept.

    With ``task_id`` the submission is idempotent: the same id again starts nothing new.
    """
    task = new_task(
        kind=kind,
        account_id=principal.account_id,
        model=model,
        request={"options": options, "filename": audio.filename if audio else "", "request_id": request_id},
        callback_url=callback_url,
        stream=stream,
    )
    if task_id is not None:
        task = task.model_copy(update={"id": task_id})
    source: dict[str, Any]
    if audio is not None:
        key = INPUT_BLOB.format(task_id=task.id)
        runtime.blobs.put(key, audio.data)
        source = {"blob_key": key, "filename": audio.filename, "delete_after": True}
    elif audio_blob_key is not None:
        source = {"blob_key": audio_blob_key, "filename": filename, "delete_after": delete_after}
    else:
        source = {"url": audio_url}
    try:
        runtime.tasks.create_task(task)
        runtime.tasks.append_event(task.id, type="status", data={"status": "pending", "progress": 0})
    except IdempotencyConflictError:
        # A caller-chosen id already exists: a retried submission (a redelivered S3 event, say). Start it
        # again below: the workflow is named after the task, so a running or finished one starts nothing.
        existing = runtime.tasks.get_task(task.id) if task_id is not None else None
        if existing is None:
            raise
        task = existing
        if task.status in ("completed", "failed"):
            return task
    runtime.jobs.start(
        task.id,
        {
            "task_id": task.id,
            "account_id": principal.account_id,
            "key_id": principal.key_id,
            "kind": kind,
            "model": model,
            "options": options,
            "source": source,
            "callback_url": callback_url,
        },
    )
    return task
