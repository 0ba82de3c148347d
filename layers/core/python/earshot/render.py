"""Transcripts to the five response formats: json, verbose_json, text, srt, vtt."""

from __future__ import annotations

from earshot.engines.base import Segment
from earshot.languages import language_name

__all__ = ["language_name", "render_srt", "render_text", "render_vtt"]


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_text(text: str) -> str:
    return text.strip() + "\n" if text.strip() else ""


def render_srt(segments: list[Segment]) -> str:
    cues = [
        f"{index}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n{seg.text.strip()}\n"
        for index, seg in enumerate((s for s in segments if s.text.strip()), start=1)
    ]
    return "\n".join(cues)


def render_vtt(segments: list[Segment]) -> str:
    cues = [
        f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}\n{seg.text.strip()}\n"
        for seg in segments
        if seg.text.strip()
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def full_language_name(code: str) -> str:
    """The language's full English name as the reference documents show it (``en`` -> ``English``).

    An unknown code (or an empty one) is reported as given.
    """
    name = language_name(code)
    if not code or name == code:
        return code
    return " ".join(word.capitalize() for word in name.split(" "))
