"""Answers composed from measured facts: the acoustic analyzer, the ears (voice activity, AudioSet sound events,
speakers) and the configured speech recogniser.

Nothing here guesses. Each sentence states a measurement and what measured it; what no model measured (emotion
above all: no emotion model ships in any registry package) is said to be unknown, with the prosodic cues that
were measured offered as cues, never as an emotion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from earshot.engines.analyzer import AcousticReport
from earshot.engines.base import Transcript
from earshot.engines.hearing import Hearing
from earshot.engines.sound_events import (
    GENRES,
    INSTRUMENTS,
    MUSIC,
    MUSIC_FAMILY,
    SoundEvent,
    events,
)
from earshot.engines.speakers import SpeakerTurn, speaker_labels

# A sound is reported present when one of its classes scores at least PRESENT on some patch, or at least
# EVENT_THRESHOLD over at least two consecutive patches. YAMNet's quantised logits make scores step
# (0.32, 0.50, 0.68, 0.82...), so these are steps, not fine-tuned values.
EVENT_THRESHOLD = 0.3
PRESENT = 0.5
_SUSTAINED_SEC = 1.4
MUSIC_PATCH_SCORE = 0.5  # a patch is music when a music class scores at least this
_GENRE_MIN = 0.15  # mean score over the music patches for a genre or instrument to be named
_SHORT_WORDS = 3

# AudioSet classes (YAMNet indices) grouped as people ask about them.
SOUND_GROUPS: dict[str, frozenset[int]] = {
    "sirens": frozenset({316, 317, 318, 319, 390, 391}),
    "alarms": frozenset({304, 382, 389, 392, 393, 394}),
    "applause": frozenset({58, 61, 62}),
    "laughter": frozenset({13, 14, 15, 16, 17, 18}),
    "traffic": frozenset({294, 300, 301, 302, 303, 308, 310, 312, 315, 320, 321}),
    "crowd": frozenset({63, 64, 65, 66}),
    "dogs": frozenset({69, 70, 71, 72, 73, 74, 75}),
    "birds": frozenset({106, 107, 108, 109, 110, 111, 112, 113}),
    "rain": frozenset({283, 284, 285}),
    "wind": frozenset({277, 279}),
    "water": frozenset({282, 286, 287, 288, 289}),
    "engines": frozenset({337, 338, 342, 343, 346, 347}),
    "telephone": frozenset({383, 384, 385, 386, 387, 388}),
    "noise": frozenset({507, 508, 509, 510, 514, 515}),
    "singing": frozenset({24, 25, 27, 29, 30, 31}),
    "coughing": frozenset({42, 43, 44}),
    "crying": frozenset({19, 20, 21, 22}),
    "footsteps": frozenset({46, 47, 48}),
    "doors": frozenset({348, 349, 350, 351, 352, 353}),
    "gunshots or explosions": frozenset({420, 421, 422, 423, 424, 426, 427, 430}),
    "breaking glass": frozenset({435, 437}),
    "keyboard typing": frozenset({378, 379, 380}),
}
_QUESTION_GROUPS: dict[str, re.Pattern[str]] = {
    "sirens": re.compile(r"\b(?:sirens?|emergency|ambulance|police|fire (?:engine|truck))\b", re.I),
    "alarms": re.compile(r"\b(?:alarms?|beep\w*)\b", re.I),
    "applause": re.compile(r"\b(?:applau\w*|clap\w*|cheer\w*|ovation)\b", re.I),
    "laughter": re.compile(r"\b(?:laugh\w*|giggl\w*|chuckl\w*)\b", re.I),
    "traffic": re.compile(r"\b(?:traffic|cars?|vehicles?|road|street|trucks?|bus|motorcycles?|horns?)\b", re.I),
    "crowd": re.compile(r"\b(?:crowd\w*|chatter|audience)\b", re.I),
    "dogs": re.compile(r"\b(?:dogs?|bark\w*)\b", re.I),
    "birds": re.compile(r"\b(?:birds?|chirp\w*|tweet\w*)\b", re.I),
    "rain": re.compile(r"\brain\w*\b", re.I),
    "wind": re.compile(r"\bwind\w*\b", re.I),
    "water": re.compile(r"\b(?:water|ocean|waves?|stream|river)\b", re.I),
    "engines": re.compile(r"\bengines?\b", re.I),
    "telephone": re.compile(r"\b(?:telephone|phone|ring\w*|dial)\b", re.I),
    "noise": re.compile(r"\b(?:nois\w*|static|hiss\w*|hum)\b", re.I),
    "singing": re.compile(r"\b(?:sing\w*|sung|vocals?|choir)\b", re.I),
    "coughing": re.compile(r"\b(?:cough\w*|sneez\w*)\b", re.I),
    "crying": re.compile(r"\b(?:cry\w*|cries|sob\w*)\b", re.I),
    "footsteps": re.compile(r"\b(?:footsteps?|steps|walking)\b", re.I),
    "doors": re.compile(r"\b(?:doors?|knock\w*|doorbell)\b", re.I),
    "gunshots or explosions": re.compile(r"\b(?:guns?\w*|shots?|explosions?|fireworks?|bang)\b", re.I),
    "breaking glass": re.compile(r"\b(?:glass|shatter\w*)\b", re.I),
    "keyboard typing": re.compile(r"\b(?:typing|keyboard)\b", re.I),
}


def _topic(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.I)


_TOPICS: dict[str, re.Pattern[str]] = {
    "music": _topic(r"music\w*", r"songs?", r"genres?", r"styles?", r"instrument\w*", r"guitars?", r"pianos?",
                    r"drums?", r"violins?", r"synth\w*", r"melod\w*", r"band", "jazz", "rock", "pop", "classical",
                    r"hip.?hop", "electronic", r"playing"),
    "tempo": _topic("tempo", "bpm", r"beats?", r"rhythm\w*", "fast", "slow", "pace"),
    "speech": _topic("speech", r"speak\w*", "spoken", r"talk\w*", r"voices?", "say", "says", "said", r"words?",
                     r"convers\w*", r"dialog\w*", "transcri\\w*", r"narrat\w*"),
    "language": _topic(r"languages?", "english", "spanish", "french", "german", "chinese", "mandarin", "japanese",
                       "italian", "portuguese", "russian", "arabic", "hindi", r"accents?"),
    "speakers": _topic(r"speakers?", "who", "how many", "people", r"persons?", "turns?", "interrupt\\w*",
                       r"participants?", "diariz\\w*"),
    "rate": _topic("rate", r"fast\w*", r"slow\w*", r"words per minute", "wpm", "pace"),
    "loudness": _topic(r"loud\w*", "volume", r"levels?", "lufs", r"quiet\w*", r"peaks?", r"clip\w*", "db"),
    "pitch": _topic(r"pitch\w*", r"high.?pitched", r"low.?pitched", r"deep", "register"),
    "silence": _topic(r"silen\w*", r"pauses?", r"gaps?", "dead air", "quiet parts"),
    "emotion": _topic(r"emotion\w*", r"mood\w*", r"feel\w*", "sentiment", r"angry", "anger", r"happ\w*", r"sad\w*",
                      r"excit\w*", "calm", r"tense", r"stress\w*", r"upset", "tone of voice", r"nervous\w*",
                      r"frustrat\w*"),
    "events": _topic(r"sounds?", r"noises?", r"events?", "environment", "background", "ambien\\w*",
                     r"what (?:can|do) you hear", "where", "location", "place", "setting"),
}  # fmt: skip
_UNKNOWABLE: tuple[tuple[re.Pattern[str], str], ...] = (
    (_topic(r"gender", "male", "female", r"man", r"woman", r"men", r"women", r"age", r"old", r"young", r"child\w*"),
     "speakers' gender or age (no model for them is installed)"),
    (_topic("title", r"artists?", r"singers?", "which song", "what song", "who sings", "composer"),
     "songs or artists (no music-identification model is installed)"),
    (_topic(r"key of", r"chords?", "chord progression"), "musical keys or chords"),
)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# The facts
# --------------------------------------------------------------------------------------------------------------


class Span(BaseModel):
    start: float
    end: float


class EventOut(BaseModel):
    label: str = Field(description="AudioSet class name")
    start: float
    end: float
    score: float = Field(description="YAMNet's probability, 0..1")


class ScoredLabel(BaseModel):
    label: str
    score: float


class MusicFacts(BaseModel):
    present: bool
    share: float = Field(description="Share of the duration where a music class scores at least 0.5")
    spans: list[Span]
    genres: list[ScoredLabel] = Field(description="AudioSet genre classes scoring at least 0.15 over the music")
    instruments: list[ScoredLabel]


class TurnOut(BaseModel):
    speaker: str
    start: float
    end: float


class SpeakerFacts(BaseModel):
    count: int
    turns: list[TurnOut]
    talk_time_sec: dict[str, float]


class SpeechFacts(BaseModel):
    share: float = Field(description="Share of the duration Silero VAD marks as speech")
    seconds: float
    regions: list[Span]
    transcript: str | None
    language: str | None = Field(description="As the speech recogniser reported it; see language_detected")
    language_detected: bool = Field(description="False when the recogniser knows only one language")
    recogniser: str | None
    words: int | None
    rate_wpm: float | None = Field(description="Words per minute of speech (VAD speech time)")


class ProsodicCues(BaseModel):
    """Measured cues a listener might read emotion from; they are not an emotion."""

    pitch_median_hz: float | None
    pitch_range_semitones: float | None
    speaking_rate_wpm: float | None
    integrated_loudness_lufs: float | None
    loudness_range_lu: float | None


class HeardFacts(BaseModel):
    """Everything measured about one clip, for answers and for JSON extraction."""

    duration_sec: float
    acoustics: dict[str, Any] = Field(description="The acoustic analyzer's report")
    speech: SpeechFacts
    speakers: SpeakerFacts | None = Field(description="None when speakers were not measured")
    sound_events: list[EventOut] | None = Field(description="None when the sound-event tagger is switched off")
    present: dict[str, list[Span]] | None = Field(description="Sound groups heard (sirens, applause...), and when")
    music: MusicFacts | None = Field(description="None when the sound-event tagger is switched off")
    silence: list[Span]
    emotion: None = Field(default=None, description="Always null: no emotion model is installed")
    prosodic_cues: ProsodicCues
    not_measured: list[str]
    measured_by: str


@dataclass(frozen=True)
class Recogniser:
    """The speech recogniser behind the facts: its catalog SKU and the languages it knows (None: many)."""

    sku: str
    languages: Sequence[str] | None


def _spans(pairs: Sequence[tuple[float, float]]) -> list[Span]:
    return [Span(start=round(a, 2), end=round(b, 2)) for a, b in pairs]


def _merge(spans: list[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _present(timeline: Sequence[SoundEvent], classes: frozenset[int]) -> list[tuple[float, float]]:
    hits = [
        (e.start, e.end)
        for e in timeline
        if e.index in classes and (e.score >= PRESENT or e.end - e.start >= _SUSTAINED_SEC)
    ]
    return _merge(hits)


def _music(hearing: Hearing) -> MusicFacts | None:
    tags = hearing.tags
    if tags is None:
        return None
    if not len(tags.scores):
        return MusicFacts(present=False, share=0.0, spans=[], genres=[], instruments=[])
    family = sorted(MUSIC_FAMILY)
    musical = tags.scores[:, family].max(axis=1) >= MUSIC_PATCH_SCORE
    spans = _merge([(float(tags.starts[i]), tags.patch_end(int(i))) for i in np.flatnonzero(musical)])
    share = sum(b - a for a, b in spans) / hearing.duration if hearing.duration else 0.0
    genres: list[ScoredLabel] = []
    instruments: list[ScoredLabel] = []
    if musical.any():
        mean = tags.scores[musical].mean(axis=0)
        for group, out in ((GENRES, genres), (INSTRUMENTS - {133}, instruments)):
            for index in sorted(group, key=lambda i: -mean[i]):
                if mean[index] < _GENRE_MIN or len(out) == 3:
                    break
                out.append(ScoredLabel(label=hearing.labels[index], score=round(float(mean[index]), 2)))
    return MusicFacts(present=bool(spans), share=round(share, 3), spans=_spans(spans), genres=genres,
                      instruments=instruments)  # fmt: skip


def _speaker_facts(hearing: Hearing, labels: Sequence[str]) -> SpeakerFacts | None:
    if hearing.diarization is None:
        return None if hearing.speech else SpeakerFacts(count=0, turns=[], talk_time_sec={})
    turns: list[SpeakerTurn] = hearing.diarization.turns
    talk: dict[str, float] = {}
    out = []
    for turn in turns:
        name = labels[turn.speaker]
        talk[name] = round(talk.get(name, 0.0) + turn.end - turn.start, 2)
        out.append(TurnOut(speaker=name, start=turn.start, end=turn.end))
    return SpeakerFacts(count=hearing.diarization.speaker_count, turns=out, talk_time_sec=talk)


def gather_facts(
    report: AcousticReport,
    hearing: Hearing,
    transcript: Transcript | None,
    recogniser: Recogniser | None,
) -> HeardFacts:
    """All measurements of one clip as ``HeardFacts``."""
    timeline = events(hearing.tags, hearing.labels, threshold=EVENT_THRESHOLD) if hearing.tags is not None else None
    present = None
    if timeline is not None:
        present = {
            name: _spans(found) for name, classes in SOUND_GROUPS.items() if (found := _present(timeline, classes))
        }
    speakers = _speaker_facts(
        hearing, speaker_labels(hearing.diarization.speaker_count) if hearing.diarization is not None else []
    )
    text = transcript.text.strip() if transcript is not None and transcript.text.strip() else None
    words = len(text.split()) if text else (0 if transcript is not None else None)
    seconds = hearing.speech_seconds
    rate = round(60 * words / seconds, 0) if words and seconds >= 2 else None
    detected = recogniser is not None and (recogniser.languages is None or len(recogniser.languages) > 1)
    speech = SpeechFacts(
        share=round(seconds / hearing.duration, 3) if hearing.duration else 0.0,
        seconds=round(seconds, 2),
        regions=_spans([(r.start, r.end) for r in hearing.speech]),
        transcript=text,
        language=transcript.language if transcript is not None and text else None,
        language_detected=bool(detected and text),
        recogniser=recogniser.sku if recogniser is not None and transcript is not None else None,
        words=words,
        rate_wpm=rate,
    )
    pitch = report.speech_pitch
    semitones = (
        round(12 * math.log2(pitch.p90_hz / pitch.p10_hz), 1) if pitch is not None and pitch.p10_hz > 0 else None
    )
    not_measured = ["emotion (no emotion model is installed)", "speakers' gender or age", "song or artist identity"]
    if timeline is None:
        not_measured.append("sound events (the sound-event tagger is switched off in this deployment)")
    if speakers is None:
        not_measured.append("speakers")
    if transcript is None and seconds > 0:
        not_measured.append("the words (no transcript was made in the time available)")
    return HeardFacts(
        duration_sec=report.duration_sec,
        acoustics=report.model_dump(mode="json"),
        speech=speech,
        speakers=speakers,
        sound_events=None
        if timeline is None
        else [EventOut(label=e.label, start=e.start, end=e.end, score=e.score) for e in timeline],
        present=present,
        music=_music(hearing),
        silence=[Span(start=s.start, end=s.end) for s in report.timeline if s.label == "silence"],
        prosodic_cues=ProsodicCues(
            pitch_median_hz=pitch.median_hz if pitch is not None else None,
            pitch_range_semitones=semitones,
            speaking_rate_wpm=rate,
            integrated_loudness_lufs=report.loudness.integrated_lufs,
            loudness_range_lu=report.loudness.loudness_range_lu,
        ),
        not_measured=not_measured,
        measured_by="embedded engines: acoustic analyzer, Silero VAD, YAMNet (AudioSet), GE2E speaker embeddings"
        + (f", speech recogniser {recogniser.sku}" if recogniser is not None and transcript is not None else ""),
    )


# --------------------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _when(spans: Sequence[Span], limit: int = 4) -> str:
    shown = ", ".join(f"{_clock(s.start)}-{_clock(s.end)}" for s in spans[:limit])
    return shown + (f" and {len(spans) - limit} more" if len(spans) > limit else "")


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 or share == 0 else "under 1%"


_LANGUAGE_NAMES = {
    "en": "English", "de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic",
    "hi": "Hindi", "pl": "Polish", "tr": "Turkish", "sv": "Swedish",
}  # fmt: skip


def _overview(facts: HeardFacts) -> str:
    parts = [f"{_percent(facts.speech.share)} speech"]
    if facts.music is not None:
        parts.append(f"{_percent(facts.music.share)} music")
    silent = sum(s.end - s.start for s in facts.silence) / facts.duration_sec if facts.duration_sec else 0.0
    parts.append(f"{_percent(silent)} silence")
    return f"This is {facts.duration_sec:.1f} s of audio: {_join(parts)}."


def _speech_sentences(facts: HeardFacts, *, detailed: bool) -> list[str]:
    speech = facts.speech
    if speech.seconds == 0:
        return ["No speech was detected (voice-activity model)."]
    out = [f"Speech takes {speech.seconds:.1f} s, in {len(speech.regions)} stretch(es) from {_when(speech.regions)}."]
    if speech.transcript:
        excerpt = (
            speech.transcript if len(speech.transcript) <= 300 else speech.transcript[:300].rsplit(" ", 1)[0] + "…"
        )
        out.append(f"Transcript ({speech.recogniser}, automatic, may contain errors): “{excerpt}”")
    elif speech.words == 0:
        out.append("The speech recogniser produced no words for it.")
    elif speech.words is None:
        out.append("The words were not transcribed in the time available.")
    return out


def _language_sentence(facts: HeardFacts) -> str:
    speech = facts.speech
    if speech.seconds == 0:
        return "There is no speech, so there is no language to tell."
    if not speech.transcript or speech.language is None:
        return "The language was not measured: no transcript was made in the time available."
    name = _LANGUAGE_NAMES.get(speech.language, speech.language)
    if not speech.language_detected:
        return (
            f"The language was not detected: the speech recogniser ({speech.recogniser}) knows only {name}, "
            "so it transcribed the speech as that."
        )
    return f"The speech recogniser ({speech.recogniser}) detected {name}."


def _speaker_sentences(facts: HeardFacts) -> list[str]:
    speakers = facts.speakers
    if speakers is None:
        return ["Speakers were not measured."]
    if speakers.count == 0:
        return ["No one speaks (no speech was detected)."]
    if speakers.count == 1:
        return [f"One voice is heard (speaker embeddings cluster into one speaker over {facts.speech.seconds:.0f} s)."]
    talk = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in speakers.talk_time_sec.items())
    turns = ", ".join(f"{t.speaker} {_clock(t.start)}-{_clock(t.end)}" for t in speakers.turns[:8])
    more = f" and {len(speakers.turns) - 8} more" if len(speakers.turns) > 8 else ""
    return [
        f"{speakers.count} different voices are heard (speaker-embedding clustering): talk time {talk}.",
        f"Turns: {turns}{more}.",
    ]


def _music_sentences(facts: HeardFacts, report: AcousticReport) -> list[str]:
    music = facts.music
    if music is None:
        return ["Music was not measured: the sound-event tagger is switched off in this deployment."]
    if not music.present:
        return ["No music was detected (AudioSet tagger)."]
    out = [f"Music is playing {_when(music.spans)} ({_percent(music.share)} of the audio)."]
    if music.genres:
        out.append(
            "AudioSet's genre classes that score highest: "
            + _join([f"{g.label} ({g.score:.2f})" for g in music.genres])
            + "."
        )
    else:
        out.append("No genre class scores high enough to name a genre.")
    if music.instruments:
        out.append("Instruments heard: " + _join([f"{i.label} ({i.score:.2f})" for i in music.instruments]) + ".")
    if report.tempo.bpm is not None:
        out.append(f"Its tempo is about {report.tempo.bpm:.0f} BPM.")
    return out


def _group_sentence(facts: HeardFacts, group: str) -> str:
    if facts.present is None:
        return f"Whether there are {group} was not measured: the sound-event tagger is switched off."
    spans = facts.present.get(group)
    if not spans:
        return f"No {group} were detected (AudioSet tagger)." if group.endswith("s") else f"No {group} was detected."
    verb = "are" if group.endswith("s") else "is"
    return f"Yes: {group} {verb} heard {_when(spans)}."


def _events_sentence(facts: HeardFacts) -> str:
    if facts.sound_events is None:
        return "Sound events were not measured: the sound-event tagger is switched off in this deployment."
    best: dict[str, float] = {}
    for event in facts.sound_events:
        if event.score >= PRESENT or event.end - event.start >= _SUSTAINED_SEC:
            best[event.label] = max(best.get(event.label, 0.0), event.score)
    if not best:
        return "The sound-event tagger found no clear sound class."
    top = sorted(best.items(), key=lambda item: -item[1])[:6]
    return "Sounds heard (AudioSet classes): " + _join([f"{label} ({score:.2f})" for label, score in top]) + "."


def _loudness_sentences(report: AcousticReport) -> list[str]:
    loudness = report.loudness
    if loudness.sample_peak_dbfs is None:
        return ["Every sample is zero: digital silence."]
    out = []
    if loudness.integrated_lufs is not None:
        out.append(f"Integrated loudness is {loudness.integrated_lufs:.1f} LUFS (ITU-R BS.1770)")
    out.append(f"peak {loudness.sample_peak_dbfs:.1f} dBFS")
    text = ", ".join(out)
    if report.clipping.detected:
        text += f"; clipping detected ({report.clipping.clipped_runs} runs)"
    return [text[0].upper() + text[1:] + "."]


def _pitch_sentence(report: AcousticReport) -> str:
    pitch = report.speech_pitch or report.pitch
    if pitch is None:
        return "No pitched sound was found to measure."
    what = "The voice's pitch" if report.speech_pitch is not None else "The pitched sound"
    return f"{what} centres on {pitch.median_hz:.0f} Hz ({pitch.p10_hz:.0f}-{pitch.p90_hz:.0f} Hz for the middle 80%)."


def _emotion_sentences(facts: HeardFacts) -> list[str]:
    cues = facts.prosodic_cues
    measured = []
    if cues.pitch_median_hz is not None and cues.pitch_range_semitones is not None:
        measured.append(
            f"voice pitch around {cues.pitch_median_hz:.0f} Hz over {cues.pitch_range_semitones:.0f} semitones"
        )
    if cues.speaking_rate_wpm is not None:
        measured.append(f"a speaking rate of {cues.speaking_rate_wpm:.0f} words per minute")
    if cues.integrated_loudness_lufs is not None:
        measured.append(f"loudness {cues.integrated_loudness_lufs:.0f} LUFS")
    text = "Emotion cannot be told: no emotion model is installed."
    if measured:
        text += f" Measured prosodic cues (cues only, not an emotion): {_join(measured)}."
    return [text]


def answer_from_facts(facts: HeardFacts, report: AcousticReport, question: str) -> str:
    """A plain-text answer to ``question`` from ``facts`` and only from them."""
    asked = {topic for topic, pattern in _TOPICS.items() if pattern.search(question)}
    groups = [group for group, pattern in _QUESTION_GROUPS.items() if pattern.search(question)]
    general = not asked and not groups
    sentences = [_overview(facts)]
    if general or "speech" in asked:
        sentences += _speech_sentences(facts, detailed="speech" in asked)
    if "language" in asked or (general and facts.speech.transcript):
        sentences.append(_language_sentence(facts))
    if "speakers" in asked or (general and facts.speakers is not None and facts.speakers.count > 1):
        sentences += _speaker_sentences(facts)
    if "rate" in asked:
        rate = facts.speech.rate_wpm
        sentences.append(
            f"The speaking rate is about {rate:.0f} words per minute of speech."
            if rate is not None
            else "The speaking rate was not measured (too little transcribed speech)."
        )
    if "music" in asked or "tempo" in asked or (general and facts.music is not None and facts.music.present):
        sentences += _music_sentences(facts, report)
    elif "tempo" in asked and report.tempo.bpm is None:
        sentences.append("No steady beat was found, so there is no tempo.")
    for group in groups:
        if group != "singing" or "music" not in asked:  # a music answer already covers singing
            sentences.append(_group_sentence(facts, group))
    if general or "events" in asked:
        sentences.append(_events_sentence(facts))
    if "silence" in asked:
        sentences.append(
            f"Silence: {_when(facts.silence)}." if facts.silence else "There is no silence of half a second or more."
        )
    if "loudness" in asked or general:
        sentences += _loudness_sentences(report)
    if "pitch" in asked:
        sentences.append(_pitch_sentence(report))
    if "emotion" in asked:
        sentences += _emotion_sentences(facts)
    cannot = [what for pattern, what in _UNKNOWABLE if pattern.search(question)]
    if cannot:
        sentences.append(f"This cannot be determined here: {_join(cannot)}.")
    return " ".join(sentences)


def facts_document(facts: HeardFacts, prompt: str) -> dict[str, Any]:
    """The facts as JSON for extraction, with what the prompt asks that nothing measured."""
    document = facts.model_dump(mode="json")
    document["cannot_determine"] = [what for pattern, what in _UNKNOWABLE if pattern.search(prompt)]
    if _TOPICS["emotion"].search(prompt):
        document["cannot_determine"].append("emotion (no emotion model is installed)")
    return document


__all__ = ["MUSIC", "HeardFacts", "Recogniser", "answer_from_facts", "facts_document", "gather_facts"]


def music_spans(hearing: Hearing) -> list[tuple[float, float]] | None:
    """Where the tagger hears music (for the analyzer's timeline), or None when it is switched off."""
    music = _music(hearing)
    return None if music is None else [(span.start, span.end) for span in music.spans]
