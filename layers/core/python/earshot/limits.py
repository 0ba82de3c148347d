"""Limits that must agree end to end: what the API accepts, what the functions that process it can hold, and how
long work may take. One home, read by the core (refusals), the CDK app (function sizes) and the docs.

A limit here is a promise: ``/v1/uploads`` accepts ``MAX_UPLOAD_BYTES``, so every function that touches an upload
has the ephemeral storage to stage one beside the unpacked ffprobe (``ephemeral_storage_mb``), and a task's audio
may last ``MAX_TASK_AUDIO_SEC``, checked before anything is reserved.
"""

from __future__ import annotations

import math

MIB = 1024 * 1024

# POST /v1/uploads: the presigned form's content-length-range ceiling.
MAX_UPLOAD_BYTES = 500 * MIB
# The static ffprobe the audio functions unpack into /tmp on first use (earshot.ffprobe_binary), uncompressed.
FFPROBE_UNPACKED_BYTES = 78_926_144
# Room for what the engines write beside the staged input: decoded chunk files (16 kHz mono 16-bit PCM is
# 115 MB per hour), temporary model caches, Python's own temp files.
ENGINE_SCRATCH_BYTES = 256 * MIB
# Lambda's ephemeral storage: 512 MB included, up to 10,240 MB, priced per GB-second beyond 512.
LAMBDA_MIN_EPHEMERAL_MB = 512
LAMBDA_MAX_EPHEMERAL_MB = 10_240

# The longest audio a task may carry (documented in README's Limits). Long audio is split into chunks that run in
# parallel (earshot.engines.fanout), so the bound is not one function's 900 s: it keeps a task's Map state, its
# merge and its result (a transcript of ~10 words/s) comfortably inside Step Functions' limits and the state machine
# timeout.
MAX_TASK_AUDIO_SEC = 4 * 3600


def staged_upload_bytes() -> int:
    """What a function that meters or decodes an upload may need in /tmp at once: the upload, the unpacked ffprobe,
    and the engines' scratch."""
    return MAX_UPLOAD_BYTES + FFPROBE_UNPACKED_BYTES + ENGINE_SCRATCH_BYTES


def ephemeral_storage_mb(needed_bytes: int | None = None) -> int:
    """The ephemeral storage (MB, a multiple of 512) that holds ``needed_bytes`` (default: ``staged_upload_bytes``)."""
    needed = staged_upload_bytes() if needed_bytes is None else needed_bytes
    size = max(LAMBDA_MIN_EPHEMERAL_MB, math.ceil(needed / MIB / 512) * 512)
    if size > LAMBDA_MAX_EPHEMERAL_MB:
        raise ValueError(f"{needed} bytes do not fit Lambda's {LAMBDA_MAX_EPHEMERAL_MB} MB of ephemeral storage")
    return size
