"""Answers from the measurements: questions and extraction prompts answered from the report, plainly."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.engines.analyzer.report import AcousticReport


def _keywords(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


# Topics the analyzer has measurements for.
_MEASURED: dict[str, re.Pattern[str]] = {
    "loudness": _keywords(r"loud\w*", "volume", r"levels?", "lufs", "lkfs", r"quiet\w*", "soft", "db", r"decibels?",
                          r"normali[sz]\w*", "gain", r"peaks?", "dbfs", "dbtp", r"dynamics?"),
    "music": _keywords(r"music\w*", r"songs?", "genres?", "tempo", "bpm", r"beats?", r"rhythm\w*", r"melod\w*",
                       r"chords?", "tune", r"sing\w*", "sung", r"danc\w*", r"instrument\w*", "style"),
    "speech": _keywords("speech", r"speak\w*", "spoken", r"talk\w*", r"voices?", r"vocal\w*", "say", "says", "said",
                        r"words?", r"pitch\w*", r"convers\w*", r"dialog\w*", r"narrat\w*", r"emotion\w*", r"mood\w*",
                        "tone", "language", r"accents?", r"persons?", "people", "man", "woman", "male", "female"),
    "silence": _keywords(r"silen\w*", r"pauses?", r"gaps?", "dead air", r"empty", "blank", "nothing"),
    "quality": _keywords(r"nois\w*", r"clip\w*", r"distort\w*", "quality", r"hiss\w*", "hum", r"buzz\w*", "static",
                         "background", "snr", "clean", r"crackl\w*", r"artifacts?", r"artefacts?", "bandwidth",
                         r"muffled", "stereo", "mono", r"channels?", r"frequenc\w*", "bass", "treble", "spectrum",
                         r"sample.?rate", "bright", "dull"),
}  # fmt: skip

# What it cannot tell, and how to say so.
_UNMEASURED: tuple[tuple[re.Pattern[str], str], ...] = (
    (_keywords(r"emotion\w*", r"mood\w*", r"feel\w*", "sentiment", r"angry", "anger", r"happ\w*", r"sad\w*",
               r"tone of", r"excit\w*", "calm", r"tense", r"stress\w*", r"sarcas\w*", "attitude", r"upset"),
     "emotions or mood"),
    (_keywords(r"genres?", "style", "jazz", "rock", "pop", "classical", r"hip.?hop", "rap", "electronic", "edm",
               "country", "metal", "blues", "folk", "reggae", "techno", "house"),
     "genres"),
    (_keywords(r"instrument\w*", r"guitars?", r"pianos?", r"drums?", r"violins?", r"synth\w*", r"orchestra\w*",
               r"saxophones?", r"trumpets?", r"keyboards?", r"key of", "chord progression"),
     "instruments, keys or chords"),
    (_keywords(r"title", r"artists?", r"singers?", r"name of", r"which song", r"what song", "who sings", "band"),
     "songs or artists"),
    (_keywords(r"languages?", "english", "spanish", "french", "german", "chinese", "mandarin", "japanese", "arabic",
               "hindi", "portuguese", "russian", "italian", r"accents?", r"dialects?"),
     "languages or accents"),
    (_keywords("who", r"speakers?", r"identif\w*", "identity", "how many", "gender", "male", "female", "man",
               "woman", "men", "women", r"age", "old", "young", r"child\w*", r"kids?", r"boys?", r"girls?"),
     "speakers (who, how many, their gender or age)"),
    (_keywords(r"dogs?", r"birds?", r"cars?", r"sirens?", "applause", r"clap\w*", r"laugh\w*", r"cough\w*",
               r"animals?", "traffic", "rain", "wind", r"doors?", r"guns?\w*", r"explosions?", r"sound effects?",
               r"what (?:sound|noise)s?", "glass", r"phones?", r"alarms?", r"engines?", r"footsteps?", "water",
               r"events?", "environment", r"where (?:was|is) (?:this|it|that) recorded", r"location"),
     "specific sounds, their sources or the place"),
)  # fmt: skip

_SUMMARY = _keywords("describe", "description", r"summar\w*", "overview", r"what(?:'s| is) (?:in|this|it|happening)",
                     r"contain\w*", "hear", r"analy[sz]\w*", "tell me about", "anything")  # fmt: skip
_UPSTREAM = "configure an upstream audio model for that"
_TRANSCRIPT_CHARS = 300
_CONTENT_NAMES = {
    "speech": "speech",
    "music": "music",
    "other": "other sound (noise, tones or effects)",
    "silence": "silence",
}


def answer_question(report: AcousticReport, question: str, transcript: str | None) -> str:
    """Answer ``question`` about the audio from the measurements in ``report``, and only from them.

    The answer opens with what the audio is (length, format, how much is speech, music and silence), adds
    the measurements the question's keywords ask about (loudness, music and tempo, speech and pitch,
    silence, quality: clipping, background, stereo, spectrum), quotes ``transcript`` when there is speech, and
    ends by saying plainly what the analyzer cannot determine: the things the question asked that are not
    acoustics (emotions, genres, languages, speakers, sound sources), or all of them when it asked nothing
    specific.

    Parameters
    ----------
    report
        ``analyze_audio``'s measurements.
    question
        The user's question, in English.
    transcript
        What the speech engine heard, if it ran; quoted as is (it may contain recognition errors).

    Returns
    -------
    str
        A few sentences of plain text.
    """
    asked = {topic for topic, pattern in _MEASURED.items() if pattern.search(question)}
    cannot = [what for pattern, what in _UNMEASURED if pattern.search(question)]
    general = not asked or bool(_SUMMARY.search(question))

    sentences = [_overview(report)]
    if general or "loudness" in asked:
        sentences += _loudness_facts(report)
    if general or "music" in asked:
        sentences += _music_facts(report, detailed="music" in asked)
    if general or "speech" in asked:
        sentences += _speech_facts(report, detailed="speech" in asked)
    if "silence" in asked:
        sentences += _silence_facts(report)
    if "quality" in asked:
        sentences += _quality_facts(report)
    elif general and report.clipping.detected:
        sentences += _clipping_facts(report)
    if report.content.speech > 0 and transcript and transcript.strip():
        sentences.append(f"Transcript (automatic, may contain errors): “{_excerpt(transcript)}”")
    elif "speech" in asked and report.content.speech > 0 and re.search(r"\b(?:say|says|said|words?)\b", question, re.I):
        sentences.append("No transcript was available to say what was said.")
    if cannot:
        sentences.append(
            f"The embedded analyzer measures acoustics; it cannot recognise {_join(cannot)} — {_UPSTREAM}."
        )
    else:
        sentences.append(
            "The embedded analyzer measures acoustics only; it cannot recognise emotions, genres, instruments, "
            f"languages, speakers or specific sounds — {_UPSTREAM}."
        )
    return " ".join(sentences)


def extract_facts(report: AcousticReport, prompt: str, transcript: str | None) -> dict[str, Any]:
    """The measurements as a JSON-ready document, for extraction in JSON mode.

    Parameters
    ----------
    report
        ``analyze_audio``'s measurements.
    prompt
        What the caller asked to extract; the things it asks for that are not acoustics are listed under
        ``cannot_determine`` (the analyzer never guesses them).
    transcript
        What the speech engine heard, or ``None``.

    Returns
    -------
    dict
        Every field of ``AcousticReport`` (``None`` where nothing was measurable), plus ``transcript``,
        ``cannot_determine`` and ``measured_by``. Contains no NaN or infinity.
    """
    facts: dict[str, Any] = report.model_dump(mode="json")
    facts["transcript"] = transcript.strip() if transcript and transcript.strip() else None
    facts["cannot_determine"] = [what for pattern, what in _UNMEASURED if pattern.search(prompt)]
    facts["measured_by"] = "embedded acoustic analyzer (measurements only, no recognition)"
    return facts


def _overview(report: AcousticReport) -> str:
    layout = report.channel_layout
    if layout not in {"mono", "stereo"}:
        layout = f"{report.channels}-channel" + (f" ({layout})" if "channel" not in layout else "")
    shares = sorted(
        ((share, name) for name, share in report.content.model_dump().items() if share >= 0.005),
        reverse=True,
    )
    content = _join([f"{_percent(share)} {_CONTENT_NAMES[name]}" for share, name in shares]) or "nothing measurable"
    text = (
        f"This is {_duration(report.duration_sec)} of {layout} audio at {report.sample_rate / 1000:g} kHz: {content}."
    )
    spans = [span for span in report.timeline if span.end - span.start >= 0.5]
    if 2 <= len(spans) <= 6 and len({span.label for span in spans}) > 1:
        text += (
            " In order: " + ", ".join(f"{span.label} {_clock(span.start)}-{_clock(span.end)}" for span in spans) + "."
        )
    return text


def _loudness_facts(report: AcousticReport) -> list[str]:
    loudness = report.loudness
    if loudness.sample_peak_dbfs is None:
        return ["Every sample is zero: the audio is digital silence, so it has no loudness."]
    if loudness.integrated_lufs is not None:
        facts = [
            f"Its integrated loudness is {loudness.integrated_lufs:.1f} LUFS (ITU-R BS.1770), "
            f"{_loudness_context(loudness.integrated_lufs)}."
        ]
    elif report.duration_sec < 0.4:
        facts = ["It is too short (under 0.4 s) for an integrated loudness measurement."]
    else:
        facts = ["It is too quiet for an integrated loudness: nothing rises above the -70 LUFS gate of ITU-R BS.1770."]
    peak = f"The sample peak is {loudness.sample_peak_dbfs:.1f} dBFS"
    if loudness.true_peak_dbtp is not None:
        peak += f" and the true peak {loudness.true_peak_dbtp:.1f} dBTP"
        if loudness.true_peak_dbtp > 0:
            peak += " (above 0 dBTP: it may clip after resampling or lossy encoding)"
    facts.append(peak + ".")
    if loudness.loudness_range_lu is not None:
        spread = (
            " (a very even level)"
            if loudness.loudness_range_lu < 3
            else " (wide dynamics)"
            if loudness.loudness_range_lu > 15
            else ""
        )
        facts.append(f"Its loudness range is {loudness.loudness_range_lu:.1f} LU{spread}.")
    return facts


def _loudness_context(lufs: float) -> str:
    if lufs >= -10:
        return "very loud: well above the -14 LUFS most streaming services normalise to"
    if lufs >= -17:
        return "around the -14 to -16 LUFS that streaming services and podcasts aim for"
    if lufs >= -21:
        return "moderate: between podcast (-16 LUFS) and broadcast (-23 LUFS) levels"
    if lufs >= -25:
        return "close to the EBU R 128 broadcast target of -23 LUFS"
    if lufs >= -35:
        return "quiet: below broadcast level (-23 LUFS)"
    return "very quiet"


def _music_facts(report: AcousticReport, *, detailed: bool) -> list[str]:
    facts = []
    if detailed:
        facts.append(
            "Music here means a steady beat or sustained notes that change; "
            + ("none was found." if report.content.music == 0 else "the share above is measured that way.")
        )
    if report.tempo.bpm is not None:
        facts.append(
            f"There is a steady beat at about {report.tempo.bpm:.0f} BPM "
            f"(regularity {report.tempo.confidence:.2f} of 1)."
        )
    elif detailed or report.content.music > 0:
        facts.append("No steady beat was found, so there is no tempo to report.")
    if detailed and report.content.music > 0 and report.spectrum.dominant_bands:
        facts.append(_bands_fact(report))
    return facts


def _speech_facts(report: AcousticReport, *, detailed: bool) -> list[str]:
    facts = []
    if detailed and report.content.speech == 0:
        facts.append("No speech was detected.")
    pitch = report.speech_pitch
    if pitch is not None:
        spread = 12 * math.log2(pitch.p90_hz / pitch.p10_hz) if pitch.p10_hz > 0 else 0.0
        facts.append(
            f"The voice's pitch centres on {pitch.median_hz:.0f} Hz ({pitch.p10_hz:.0f} to {pitch.p90_hz:.0f} Hz for "
            f"the middle 80%, a spread of {spread:.0f} semitones), {_voice_register(pitch.median_hz)}."
        )
    elif report.content.speech > 0 and detailed:
        facts.append("Too little of the speech is voiced (pitched) to measure its pitch, as with whispering.")
    elif detailed and report.pitch is not None:
        facts.append(
            f"The pitched sound centres on {report.pitch.median_hz:.0f} Hz "
            f"({report.pitch.p10_hz:.0f} to {report.pitch.p90_hz:.0f} Hz for the middle 80%)."
        )
    return facts


def _voice_register(median_hz: float) -> str:
    if median_hz < 120:
        return "a low-pitched voice"
    if median_hz < 200:
        return "a mid-pitched voice"
    return "a high-pitched voice"


def _silence_facts(report: AcousticReport) -> list[str]:
    quiet = [span for span in report.timeline if span.label == "silence"]
    if not quiet:
        return ["There is no silence: no quiet stretch of half a second or more, and none at either end."]
    if report.content.silence >= 0.995:
        return ["It is silent throughout (below -60 dBFS, or digital silence)."]
    longest = max(quiet, key=lambda span: span.end - span.start)
    return [
        f"Silence (below -60 dBFS or 35 dB under the loud parts, for at least 0.5 s, or at either end) makes up "
        f"{_percent(report.content.silence)} in {len(quiet)} stretch{'es' if len(quiet) > 1 else ''}; the longest "
        f"lasts {_duration(longest.end - longest.start)} from {_clock(longest.start)}."
    ]


def _quality_facts(report: AcousticReport) -> list[str]:
    facts = _clipping_facts(report)
    if report.background_level_dbfs <= -90:
        facts.append("Its quietest parts are digital silence, so there is no background noise between sounds.")
    else:
        facts.append(
            f"Its background level (the quietest tenth) is {report.background_level_dbfs:.0f} dBFS, "
            f"{report.dynamic_range_db:.0f} dB below the loud parts"
            + (
                " — little contrast, as with a steady sound or noticeable background noise"
                if report.dynamic_range_db < 15
                else ""
            )
            + "."
        )
    if report.stereo is None:
        facts.append("It is mono.")
    elif report.stereo.channels_identical:
        facts.append("Its two channels are identical: mono content in a stereo file.")
    else:
        side = ""
        balance = report.stereo.balance_db
        if balance is not None and abs(balance) >= 3:
            side = f", {abs(balance):.0f} dB louder on the {'left' if balance > 0 else 'right'}"
        correlation = f" (correlation {report.stereo.correlation:.2f})" if report.stereo.correlation is not None else ""
        facts.append(f"Its channels differ{correlation}{side}.")
    if report.spectrum.dominant_bands:
        facts.append(_bands_fact(report))
    return facts


def _clipping_facts(report: AcousticReport) -> list[str]:
    clipping = report.clipping
    if clipping.detected:
        return [
            f"Clipping was detected: {clipping.clipped_runs} run{'s' if clipping.clipped_runs > 1 else ''} of "
            f"consecutive full-scale samples ({clipping.clipped_sample_share:.2%} of samples)"
            + (
                "; that much usually sounds distorted."
                if clipping.clipped_sample_share >= 0.001
                else "; a few brief clips may be inaudible."
            )
        ]
    if report.loudness.sample_peak_dbfs is None:
        return ["There is no clipping (every sample is zero)."]
    return [f"No clipping was detected (the sample peak is {report.loudness.sample_peak_dbfs:.1f} dBFS)."]


def _bands_fact(report: AcousticReport) -> str:
    bands = {band.name: band for band in report.spectrum.bands}
    named = [
        f"{name} ({_hz(bands[name].low_hz)} to {_hz(bands[name].high_hz)}, {_percent(bands[name].share)})"
        for name in report.spectrum.dominant_bands
    ]
    text = f"Most of the energy is in the {_join(named)} band{'s' if len(named) > 1 else ''}"
    if report.spectrum.rolloff_hz is not None:
        text += f"; 95% of it lies below {_hz(report.spectrum.rolloff_hz)}"
    return text + "."


def _excerpt(transcript: str) -> str:
    text = " ".join(transcript.split())
    if len(text) <= _TRANSCRIPT_CHARS:
        return text
    return text[:_TRANSCRIPT_CHARS].rsplit(" ", 1)[0] + "…"


def _join(items: Sequence[str], conjunction: str = "and") -> str:
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


def _hz(frequency: float) -> str:
    return f"{frequency / 1000:.3g} kHz" if frequency >= 1000 else f"{frequency:.0f} Hz"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
