"""Speaker labels on transcript segments: a split at each change of speaker, never a segment that lasts no time."""

from __future__ import annotations

from types import SimpleNamespace

from earshot.engines.base import Segment, Transcript, Word
from earshot.services.diarization import assign_speakers

TURNS = [SimpleNamespace(speaker=0, start=0.0, end=5.5), SimpleNamespace(speaker=1, start=5.5, end=9.0)]


def _transcript(*words: tuple[str, float, float]) -> Transcript:
    timed = [Word(word=text, start=start, end=end) for text, start, end in words]
    segment = Segment(id=0, start=timed[0].start, end=timed[-1].end, text=" ".join(w for w, _, _ in words), words=timed)
    return Transcript(text=segment.text, language="en", segments=[segment], words=timed)


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    result = assign_speakers(_transcript(("hello", 1.0, 2.0), ("there", 6.0, 7.0)), TURNS, ["A", "B"])
    assert [(s.speaker, s.start, s.end, s.text) for s in result.segments] == [
        ("A", 1.0, 2.0, "hello"),
        ("B", 6.0, 7.0, "there"),
    ]


def test_a_word_timed_as_an_instant_joins_its_neighbour_instead_of_making_an_empty_segment() -> None:
    # Whisper timed "I" as an instant (5.3-5.3) nearest a short turn of A between two of B: alone it would be an A
    # segment that ends where it starts (seen on the two-speaker LibriVox call).
    turns = [
        SimpleNamespace(speaker=1, start=0.0, end=5.0),
        SimpleNamespace(speaker=0, start=5.0, end=5.5),
        SimpleNamespace(speaker=1, start=5.5, end=9.0),
    ]
    words = [("thought", 4.0, 4.9), ("I", 5.3, 5.3), ("heard", 5.6, 6.0), ("hello", 1.0, 2.0)][:3]
    result = assign_speakers(_transcript(*words), turns, ["A", "B"])
    assert all(segment.start < segment.end for segment in result.segments)
    assert [(s.speaker, s.start, s.end, s.text) for s in result.segments] == [("B", 4.0, 6.0, "thought I heard")]


def test_an_instant_first_word_joins_the_group_after_it() -> None:
    words = [("so", 1.0, 1.0), ("hello", 1.0, 2.0), ("there", 6.0, 7.0)]
    result = assign_speakers(_transcript(*words), TURNS, ["A", "B"])
    assert [(s.speaker, s.start, s.end, s.text) for s in result.segments] == [
        ("A", 1.0, 2.0, "so hello"),
        ("B", 6.0, 7.0, "there"),
    ]
