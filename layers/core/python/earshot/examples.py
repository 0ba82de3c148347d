"""One example request and answer per route, for the OpenAPI document (and so for ``/docs``).

The answers are what the shipped embedded engines return for ``samples/speech.wav`` (``make sample``),
shortened; ``tests/unit/test_openapi_examples.py`` validates each against the route's own models, so an
example cannot drift from the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEXT = "he was not an ill disposed young man"
TASK_ID = "task-transcription-1796168210-lrit6vku"
BILLING: dict[str, Any] = {
    "duration_sec": 24.73,
    "duration_source": "measured",
    "billable_minutes": 1,
    "cost_usd": 0.0009,
    "cost_micro_usd": 900,
    "balance_usd": 9.9991,
    "balance_micro_usd": 9999100,
}
# Real audio, so the example runs as written: 0.1 s of a 440 Hz tone (WAV, 8 kHz, 8-bit mono).
_DATA_URL = (
    "data:audio/wav;base64,UklGRkQDAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YSADAACAlKazuru0p5aBbVtNRU"
    "RKVmh8kKOxuru2qpmFcV5PRkRIVGR4jaCvubu3rZyJdGFRR0RHUWF0iZytt7u5r6CNeGRUSERGT15xhZmqtru6saOQfGhWSkRFTV"
    "ttgZantLu6s6aUf2tZTEVES1hpfpKksrq7tamXg29cTkVESVVmeo6hsLm7t6ubh3JfUEZESFJjdouerri8uK6ei3ZjUkhERlBfco"
    "ebq7e7ubChjnpmVUlERU5cb4OXqbW7urKkkn5pWEtERUxZa4CUprO6u7SnloFtW01FREpWaHyQo7G6u7aqmYVxXk9GREhUZHiNoK"
    "+5u7etnIl0YVFHREdRYXSJnK23u7mvoI14ZFRIREZPXnGFmaq2u7qxo5B8aFZKREVNW22Blqe0u7qzppSAa1lMRURLWGl+kqSyur"
    "u1qZeDb1xORURJVWZ6jqGwubu3q5uHcl9QRkRIUmN2i56uuLy4rp6LdmNSSERGUF9yh5urt7u5sKGOemZVSURFTlxvg5eptbu6sq"
    "SSfmlYS0RFTFlrgJSms7q7tKeWgW1bTUVESlZofJCjsbq7tqqZhXFeT0ZESFRkeI2gr7m7t62ciXRhUUdER1FhdImcrbe7ua+gjX"
    "hkVEhERk9ecYWZqra7urGjkHxoVkpERU1bbYGWp7S7urOmlH9rWUxFREtYaX6SpLK6u7Wpl4NvXE5FRElVZnqOobC5u7erm4dyX1"
    "BGREhSY3aLnq64vLiunot2Y1JIREZQX3KHm6u3u7mwoY56ZlVJREVOXG+Dl6m1u7qypJJ+aVhLREVMWWt/lKazuru0p5aBbVtNRU"
    "RKVmh8kKOxuru2qpmFcV5PRkRIVGR4jaCvubu3rZyJdGFRR0RHUWF0iZytt7u5r6CNeGRUSERGT15xhZmqtru6saOQfGhWSkRFTV"
    "ttgZantLu6s6aUf2tZTEVES1hpfpKksrq7tamXg29cTkVESVVmeo6hsLm7t6ubh3JfUEZESFJjdouerri8uK6ei3ZjUkhERlBfco"
    "ebq7e7ubChjnpmVUlERU5cb4OXqbW7urKkkn5pWEtERUxZaw=="
)


@dataclass(frozen=True)
class RouteExamples:
    """``request``: the body (form fields for multipart, ``file`` named as a file); ``response``: the 200 body."""

    request: Any = None
    response: Any = None


_TASK = {
    "id": TASK_ID,
    "object": "transcription.task",
    "kind": "transcription",
    "model": "whisper-base",
    "status": "completed",
    "progress": 100,
    "created_at": 1796168210,
    "updated_at": 1796168227,
    "stream": None,
    "results": [{"text": TEXT, "model": "whisper-base", "usage": {"type": "duration", "seconds": 24.73}}],
    "error": None,
}

TRANSCRIPTION = RouteExamples(
    request={"file": "speech.wav", "model": "transcribe", "response_format": "json"},
    response={
        "text": TEXT,
        "model": "whisper-base",
        "usage": {"type": "duration", "seconds": 24.73},
        "billing": BILLING,
    },
)
V2_TRANSCRIBE = RouteExamples(
    request={"file": "speech.wav", "model": "transcribe"},
    response={
        "instanceId": "dc74ca85-4d84-44bd-ad6f-c316d135ca0c",
        "transcript": TEXT,
        "metadata": {"language": "English", "duration": "24.730"},
        "tokenUsage": {"completionTokens": 0, "promptTokens": 0, "totalTokens": 0},
        "cost": {"completion": 0.0, "prompt": 0.0009, "total": 0.0009, "currency": "USD"},
    },
)
UNDERSTAND = RouteExamples(
    request={"file": "speech.wav", "question": "Is it speech or music, and how loud is it?"},
    response={
        "answer": "This is 24.7 s of mono audio at 16 kHz: 100% speech. Integrated loudness is -24.3 LUFS.",
        "model": "acoustic-understand",
        "billing": {
            **BILLING,
            "cost_usd": 0.0003,
            "cost_micro_usd": 300,
            "balance_usd": 9.9997,
            "balance_micro_usd": 9999700,
        },
    },
)
EXTRACT = RouteExamples(
    request={
        "inputMethod": "base64",
        "audio": _DATA_URL,
        "prompt": "Return the duration and the speech share",
        "jsonMode": True,
    },
    response={
        "results": {"duration_sec": 24.73, "content": {"speech": 1.0, "music": 0.0, "other": 0.0, "silence": 0.0}},
        "prompt": "Return the duration and the speech share",
        "audioDuration": 24.73,
        "creditUsage": 12,
    },
)
EXTRACT_FORMATS = RouteExamples(
    response={
        "supportedFormats": ["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "webm"],
        "maxFileSizeMB": 100,
        "maxDurationSeconds": 34200,
        "maxInlineSizeMB": 100.0,
        "largerFiles": "inputMethod 'url' (https) up to maxFileSizeMB, or POST /v1/uploads and then "
        "inputMethod 'file_id'",
    }
)
UNDERSTANDING = RouteExamples(
    request={"audio": _DATA_URL, "prompt": "What is said, and how does it sound?", "sync": True},
    response={
        **_TASK,
        "id": "task-llm-1796170645-g8lou70s",
        "object": "llm.generation.task",
        "kind": "llm",
        "model": "audio-understand",
        "results": [
            {
                "id": "chatcmpl-5b0c6a1f2e9d4c3b8a7f6e5d",
                "object": "chat.completion",
                "created": 1796170650,
                "model": "audio-understand",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Calm speech, -24 LUFS."},
                        "finish_reason": "stop",
                    }
                ],
            }
        ],
    },
)
TASK = RouteExamples(response=_TASK)
TASK_EVENTS = RouteExamples(
    response=(
        'id: 1\nevent: status\ndata: {"status":"pending","progress":0}\n\n'
        'id: 5\nevent: partial\ndata: {"segment":{"id":0,"start":0.3,"end":2.1,"text":"he was not an ill disposed"}}'
        "\n\n"
        'id: 10\nevent: status\ndata: {"status":"completed","progress":100}\n\n'
        f'event: done\ndata: {{"id":"{TASK_ID}","status":"completed","progress":100}}\n\n'
    )
)
TASK_DELETE = RouteExamples(response={"id": TASK_ID, "object": "transcription.task", "deleted": True})
UPLOAD = RouteExamples(
    request={
        "filename": "talk.mp3",
        "bytes": 48000000,
        "process": {"kind": "transcription", "options": {"response_format": "verbose_json"}},
    },
    response={
        "id": "file-fddcd755a50af762f6b304a9",
        "object": "upload",
        "filename": "talk.mp3",
        "bytes": 48000000,
        "purpose": "audio",
        "status": "pending",
        "created_at": 1796170374,
        "expires_at": 1796173974,
        "upload": {
            "url": "https://uploads.example.com/",
            "method": "POST",
            "fields": {"key": "inbox/..."},
            "file_field": "file",
        },
        "process": {
            "kind": "transcription",
            "model": None,
            "options": {"response_format": "verbose_json"},
            "callback_url": None,
        },
        "task_id": "task-transcription-1796170374-f447e17e",
        "retain": False,
    },
)
MODELS = RouteExamples(
    response={
        "object": "list",
        "data": [
            {
                "id": "whisper-base",
                "object": "model",
                "created": 1767225600,
                "owned_by": "earshot",
                "kind": "transcription",
                "aliases": ["transcribe"],
                "price_per_minute_usd": 0.0009,
                "price_per_minute_micro_usd": 900,
                "languages": ["en", "zh", "de", "es", "ru", "ko", "fr", "ja"],
                "description": "Embedded OpenAI Whisper base (multilingual, 74M parameters) via CTranslate2, int8 on "
                "CPU. Offline.",
                "live": True,
                "setup": None,
            },
            {
                "id": "whisper-v3-turbo",
                "object": "model",
                "created": 1767225600,
                "owned_by": "earshot",
                "kind": "transcription",
                "aliases": [],
                "price_per_minute_usd": 0.0009,
                "price_per_minute_micro_usd": 900,
                "languages": None,
                "description": "Whisper large-v3-turbo on Groq (OpenAI-compatible transcription API). Needs "
                "GROQ_API_KEY.",
                "live": False,
                "setup": "its provider credential is not configured: set GROQ_API_KEY in the server's environment",
            },
        ],
    }
)
BALANCE = RouteExamples(
    response={
        "object": "credit_balance",
        "account_id": "acct_6e6f8dd82a2bfecb",
        "balance_usd": 9.9991,
        "balance_micro_usd": 9999100,
        "currency": "USD",
        "audio_enabled": True,
    }
)
USAGE = RouteExamples(
    response={
        "object": "list",
        "data": [
            {
                "id": "led_18ed45717fb7b41cf57467d4",
                "object": "ledger_entry",
                "request_id": "898eea32-3c4ad0f9cf6b",
                "kind": "debit",
                "amount_usd": -0.0009,
                "amount_micro_usd": -900,
                "balance_after_usd": 9.9991,
                "balance_after_micro_usd": 9999100,
                "model": "whisper-base",
                "duration_sec": 24.73,
                "billable_minutes": 1,
                "description": "transcribe 24.730s",
                "created_at": 1796168180,
            }
        ],
        "has_more": False,
        "next_before": None,
        "total_charged_micro_usd": 900,
    }
)
OPENAPI = RouteExamples(response={"openapi": "3.1.0", "info": {"title": "Earshot", "version": "0.1.0"}, "paths": {}})
