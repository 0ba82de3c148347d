"""Submitting a job as an async task: store its audio, create the task, start the workflow.

What the caller sent (options, the audio's URL or key, the callback URL) goes into the task record;
the workflow starts with a reference to the task and nothing else.
"""

from __future__ import annotations

from typing import Any

from earshot.blob_layout import task_input_key
from earshot.errors import IdempotencyConflictError
from earshot.ports import Principal, Task, new_task
from earshot.runtime import Runtime
from earshot.services.charged_run import AudioPayload
from earshot.uploaded import upload_bytes


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
    filename = audio.filename if audio else filename
    task = new_task(
        kind=kind,
        account_id=principal.account_id,
        model=model,
        request={"options": options, "filename": filename, "request_id": request_id, "key_id": principal.key_id},
        callback_url=callback_url,
        stream=stream,
    )
    if task_id is not None:
        task = task.model_copy(update={"id": task_id})
    source: dict[str, Any]
    if audio is not None:
        key = task_input_key(task.id)
        runtime.blobs.put(key, upload_bytes(audio.data))
        source = {"blob_key": key, "delete_after": True}
    elif audio_blob_key is not None:
        source = {"blob_key": audio_blob_key, "delete_after": delete_after}
    else:
        source = {"url": audio_url}
    task = task.model_copy(update={"request": {**task.request, "source": source}})
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
    runtime.jobs.start(task.id, workflow_input(task))
    return task


def workflow_input(task: Task) -> dict[str, Any]:
    """The workflow's whole input: a reference to the task, and whether it has a webhook to deliver (``notify``,
    for the state machine's Choice). No caller payload: the callback URL and the options stay in the task."""
    state: dict[str, Any] = {"task_id": task.id}
    if task.callback_url:
        state["notify"] = "webhook"
    return state
