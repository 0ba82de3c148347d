"""Speaker labels for a transcript: ``response_format=diarized_json`` on any transcription engine.

The configured ``TranscriptionEngine`` (embedded or upstream) produces the words; the embedded ears find who
speaks when (Silero VAD regions, GE2E embeddings, clustering), and each transcript segment takes the speaker it
overlaps most. When the engine gave word timings, a segment that spans a change of speaker is split there.
Speakers are labelled ``A``, ``B``, ... in order of first appearance, or by the caller's
``known_speaker_names[]`` where a cluster's voice matches that name's reference clip.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earshot.engines.base import Segment, Transcript, Word
from earshot.errors import EarshotError, InvalidRequestError

MAX_KNOWN_SPEAKERS = 4
MIN_REFERENCE_SEC = 2.0
MAX_REFERENCE_SEC = 10.0
MAX_REFERENCE_BYTES = 2 * 1024 * 1024
# Cosine between a reference clip's embedding and a speaker's centre at or above which the speaker takes the
# reference's name. GE2E puts one voice's clips at >= ~0.75 and different voices mostly below ~0.7.
KNOWN_SPEAKER_MIN_SIMILARITY = 0.7
_PARAM_NAMES = "known_speaker_names[]"
_PARAM_REFERENCES = "known_speaker_references[]"


@dataclass(frozen=True)
class KnownSpeaker:
    name: str
    audio: bytes  # the decoded reference clip (any format the decoder reads), 2-10 s


def check_known_speakers(names: Sequence[str], references: Sequence[str]) -> list[KnownSpeaker]:
    """Validate ``known_speaker_names[]`` / ``known_speaker_references[]`` (data URLs of 2-10 s clips).

    Raises ``InvalidRequestError`` (400, before any charge) for mismatched lists, more than four speakers, a
    repeated or empty name, a reference that is not a base64 ``data:audio/...`` URL, does not decode as audio, or
    is shorter than 2 s or longer than 10 s.
    """
    from earshot.adapters.fetcher import parse_data_url

    if not names and not references:
        return []
    if len(names) != len(references):
        raise InvalidRequestError(
            f"send one known_speaker_references[] clip per known_speaker_names[] entry "
            f"(got {len(names)} names and {len(references)} references)",
            param=_PARAM_REFERENCES if names else _PARAM_NAMES,
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequestError(f"at most {MAX_KNOWN_SPEAKERS} known speakers are supported", param=_PARAM_NAMES)
    cleaned = [name.strip() for name in names]
    if any(not name for name in cleaned) or len(set(cleaned)) != len(cleaned):
        raise InvalidRequestError("known_speaker_names[] must be distinct, non-empty names", param=_PARAM_NAMES)
    known = []
    for index, (name, reference) in enumerate(zip(cleaned, references, strict=True)):
        try:
            _mime, data = parse_data_url(reference, max_bytes=MAX_REFERENCE_BYTES)
        except EarshotError as exc:
            raise InvalidRequestError(
                f"known_speaker_references[{index}] must be a data:audio/...;base64, URL: {exc.message}",
                param=_PARAM_REFERENCES,
            ) from None
        seconds = _clip_seconds(data, index)
        if not MIN_REFERENCE_SEC <= seconds <= MAX_REFERENCE_SEC:
            raise InvalidRequestError(
                f"known_speaker_references[{index}] is {seconds:.1f} s long; each clip must be 2 to 10 seconds",
                param=_PARAM_REFERENCES,
            )
        known.append(KnownSpeaker(name=name, audio=data))
    return known


def _decode_clip(data: bytes) -> Any:
    from earshot.audio.decode import decode_to_pcm16k

    with tempfile.NamedTemporaryFile(suffix=".audio") as handle:
        handle.write(data)
        handle.flush()
        return decode_to_pcm16k(Path(handle.name))


def _clip_seconds(data: bytes, index: int) -> float:
    from earshot.audio.decode import SAMPLE_RATE

    try:
        pcm = _decode_clip(data)
    except EarshotError:
        raise InvalidRequestError(
            f"known_speaker_references[{index}] is not audio we can decode", param=_PARAM_REFERENCES
        ) from None
    return len(pcm) / SAMPLE_RATE


def name_speakers(centroids: Any, known: Sequence[KnownSpeaker], ears: Any) -> list[str]:
    """A label per speaker cluster: a known name where its reference matches best (one name per cluster),
    else letters in cluster order (clusters are numbered by first appearance)."""
    import numpy as np

    from earshot.engines.speakers import speaker_labels
    from earshot.engines.vad import SAMPLE_RATE

    count = len(centroids)
    names: list[str | None] = [None] * count
    if known and count:
        references = []
        for speaker in known:
            pcm = _decode_clip(speaker.audio)
            regions = ears.vad.regions(pcm)
            waveform = pcm.astype(np.float32) / 32768.0
            voiced = [waveform[int(r.start * SAMPLE_RATE) : int(r.end * SAMPLE_RATE)] for r in regions]
            clip = np.concatenate(voiced) if voiced else waveform
            references.append(ears.encoder.embed(clip))
        similarity = np.array(references) @ np.asarray(centroids).T  # (known, clusters)
        pairs = sorted(((float(similarity[k, c]), k, c) for k in range(len(known)) for c in range(count)), reverse=True)
        used_known: set[int] = set()
        for score, k, c in pairs:
            if score < KNOWN_SPEAKER_MIN_SIMILARITY:
                break
            if k in used_known or names[c] is not None:
                continue
            names[c] = known[k].name
            used_known.add(k)
    letters = iter(speaker_labels(count))
    return [name if name is not None else next(letters) for name in names]


def _speaker_at(turns: Sequence[Any], start: float, end: float) -> int | None:
    """The speaker whose turns overlap ``[start, end]`` most; for an instant, the nearest turn."""
    overlap: dict[int, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=lambda speaker: overlap[speaker])
    if not turns:
        return None
    middle = (start + end) / 2
    nearest = min(turns, key=lambda turn: min(abs(turn.start - middle), abs(turn.end - middle)))
    return int(nearest.speaker)


def _without_instants(groups: list[tuple[int | None, list[Word]]]) -> list[tuple[int | None, list[Word]]]:
    """Speaker groups with no group that lasts no time: Whisper may time a word as an instant (start == end), and a
    segment from such a word alone would end where it starts. It joins the group before it (the first, the next)."""
    kept: list[tuple[int | None, list[Word]]] = []
    carried: list[Word] = []
    for speaker, group in groups:
        if group[-1].end <= group[0].start and (kept or len(groups) > 1):
            if kept:
                kept[-1][1].extend(group)
            else:
                carried.extend(group)
            continue
        kept.append((speaker, carried + group))
        carried = []
    merged: list[tuple[int | None, list[Word]]] = []
    for speaker, group in kept:  # neighbours of one speaker, once an instant between them is gone
        if merged and merged[-1][0] == speaker:
            merged[-1][1].extend(group)
        else:
            merged.append((speaker, group))
    return merged or groups


def assign_speakers(transcript: Transcript, turns: Sequence[Any], labels: Sequence[str]) -> Transcript:
    """Transcript segments with a ``speaker`` label each, split at speaker changes where word times allow."""
    segments: list[Segment] = []
    for segment in transcript.segments:
        words = segment.words or [w for w in transcript.words if segment.start <= w.start < segment.end]
        if len(words) > 1:
            groups: list[tuple[int | None, list[Word]]] = []
            for word in words:
                speaker = _speaker_at(turns, word.start, word.end)
                if groups and groups[-1][0] == speaker:
                    groups[-1][1].append(word)
                else:
                    groups.append((speaker, [word]))
            groups = _without_instants(groups)
            if len(groups) > 1:
                for speaker, group in groups:
                    segments.append(
                        segment.model_copy(
                            update={
                                "id": len(segments),
                                "start": group[0].start,
                                "end": group[-1].end,
                                "text": " ".join(word.word.strip() for word in group),
                                "words": group,
                                "speaker": labels[speaker] if speaker is not None else labels[0] if labels else "A",
                            }
                        )
                    )
                continue
        speaker = _speaker_at(turns, segment.start, segment.end)
        label = labels[speaker] if speaker is not None and labels else (labels[0] if labels else "A")
        segments.append(segment.model_copy(update={"id": len(segments), "speaker": label}))
    return transcript.model_copy(update={"segments": segments})


def diarize_transcript(transcript: Transcript, audio: Path, known: Sequence[KnownSpeaker]) -> Transcript:
    """Label ``transcript``'s segments with the speakers heard in ``audio``."""
    from earshot.audio.decode import decode_to_pcm16k
    from earshot.engines.hearing import get_ears
    from earshot.engines.speakers import diarize

    ears = get_ears()
    pcm = decode_to_pcm16k(audio)
    regions = ears.vad.regions(pcm)
    diarization = diarize(ears.encoder, pcm, regions)
    labels = name_speakers(diarization.centroids, known, ears)
    return assign_speakers(transcript, diarization.turns, labels)
