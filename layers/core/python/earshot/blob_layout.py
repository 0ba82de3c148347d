"""Every key shape in the blob store (S3 in the cloud, files locally), in one place.

``infra/`` imports the prefixes for the bucket's lifecycle rules and the ingest notification, so a
key shape changed here changes the stack with it.
"""

from __future__ import annotations

import re

INBOX_PREFIX = "inbox/"  # presigned uploads land here and expire: inbox/<account>/<file_id>/<name>
UPLOADS_PREFIX = "uploads/"  # upload records: uploads/<file_id>.json
TASKS_PREFIX = "tasks/"  # a task's stored input and large result: tasks/<task_id>/...
INFERENCE_PREFIX = "inference/"  # an engine call's audio above the invoke payload limit (earshot.engines.remote)

# An upload's object key, and the parts ingest reads back from it.
INBOX_KEY = re.compile(r"^inbox/(?P<account>acct_[0-9a-f]+)/(?P<file_id>file-[0-9a-f]{24})/")


def inbox_key(account_id: str, file_id: str, safe_name: str) -> str:
    """Where a presigned upload puts its audio."""
    return f"{INBOX_PREFIX}{account_id}/{file_id}/{safe_name}"


def upload_record_key(file_id: str) -> str:
    return f"{UPLOADS_PREFIX}{file_id}.json"


def task_input_key(task_id: str) -> str:
    """A task's audio when the request carried it (or the workflow fetched it from a URL)."""
    return f"{TASKS_PREFIX}{task_id}/input"


def task_result_key(task_id: str) -> str:
    """A task's rendered result (kept when too large for the task record)."""
    return f"{TASKS_PREFIX}{task_id}/result.json"


def task_chunk_key(task_id: str, index: int) -> str:
    """One chunk of a long task's audio (16 kHz mono WAV), cut by the workflow's ``plan_chunks``."""
    return f"{TASKS_PREFIX}{task_id}/chunks/{index:05d}.wav"


def task_chunk_result_key(task_id: str, index: int) -> str:
    """What the engine made of one chunk (``run_chunk``), read back by ``merge_chunks``."""
    return f"{TASKS_PREFIX}{task_id}/chunks/{index:05d}.json"


def inference_key(call_id: str, name: str) -> str:
    """Audio handed to the inference function by key (too large for the invoke payload); deleted after the call."""
    return f"{INFERENCE_PREFIX}{call_id}/{name or 'audio'}"
