"""srt / vtt / text rendering from segments."""

from __future__ import annotations

from earshot.engines.base import Segment
from earshot.render import language_name, render_srt, render_text, render_vtt

SEGMENTS = [
    Segment(id=0, start=0.0, end=1.5, text=" hello world"),
    Segment(id=1, start=2.25, end=3661.0049, text="second part "),
    Segment(id=2, start=4.0, end=4.5, text="  "),
]


def test_srt_numbers_cues_and_uses_commas() -> None:
    assert render_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nhello world\n\n2\n00:00:02,250 --> 01:01:01,005\nsecond part\n"
    )


def test_vtt_has_its_header_and_dots() -> None:
    assert render_vtt(SEGMENTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello world\n\n00:00:02.250 --> 01:01:01.005\nsecond part\n"
    )


def test_empty_transcripts_render_empty_but_valid() -> None:
    assert render_text("  ") == ""
    assert render_srt([]) == ""
    assert render_vtt([]) == "WEBVTT\n\n"


def test_language_names_follow_openai() -> None:
    assert language_name("en") == "english"
    assert language_name("en-US") == "english"
    assert language_name("xx") == "xx"


def test_full_language_names_as_the_documents_show_them() -> None:
    from earshot.render import full_language_name

    assert full_language_name("en") == "English"
    assert full_language_name("en-US") == "English"
    assert full_language_name("es") == "Spanish"
    assert full_language_name("xx") == "xx"
    assert full_language_name("") == ""
