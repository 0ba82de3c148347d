"""The embedded pocketsphinx engine and the decoder in front of it, on speech espeak-ng says at test time.

Pocketsphinx on synthetic speech is rough, so recognition is asserted on a share of the spoken words; the
structure (segments, timestamps, errors) is asserted exactly.
"""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from audio_fixtures import write_audio
from speech_fixtures import requires_espeak, speak, speak_sentences

from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k
from earshot.engines.base import Transcript, TranscriptionEngine, TranscriptionOptions
from earshot.engines.pocketsphinx_engine import PocketsphinxEngine
from earshot.errors import InvalidAudioError, ProviderTimeoutError, UnsupportedByModelError

HELLO = "hello world this is a test"
FIRST, SECOND = "the weather is nice today", "please call me tomorrow morning"
PAUSE_SEC = 1.5
# One mp3 frame (1152 samples at espeak's 22.05 kHz) in 16 kHz samples: the most a codec's framing may add.
CODEC_FRAME_TOLERANCE = 1152 * SAMPLE_RATE // 22050 + 1


def spoken_words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def share_recognised(said: str, transcript: Transcript) -> float:
    heard = set(spoken_words(transcript.text))
    words = spoken_words(said)
    return sum(word in heard for word in words) / len(words)


def duration_of(path: Path) -> float:
    return len(decode_to_pcm16k(path)) / SAMPLE_RATE


@pytest.fixture(scope="module")
def engine() -> PocketsphinxEngine:
    return PocketsphinxEngine()


@pytest.fixture(scope="module")
def hello_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("speech") / "hello.wav", HELLO)


@pytest.fixture(scope="module")
def two_sentences_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak_sentences(tmp_path_factory.mktemp("speech") / "two.wav", [FIRST, SECOND], pause_sec=PAUSE_SEC)


@pytest.fixture(scope="module")
def hello_transcript(engine: PocketsphinxEngine, hello_wav: Path) -> Transcript:
    return engine.transcribe(hello_wav, TranscriptionOptions())


@pytest.fixture(scope="module")
def two_sentences_transcript(engine: PocketsphinxEngine, two_sentences_wav: Path) -> Transcript:
    return engine.transcribe(two_sentences_wav, TranscriptionOptions(word_timestamps=True))


def test_engine_speaks_the_protocol(engine: PocketsphinxEngine) -> None:
    typed: TranscriptionEngine = engine
    assert typed is engine


# --- recognition -------------------------------------------------------------------------------------


@requires_espeak
def test_a_clear_sentence_is_mostly_recognised(hello_transcript: Transcript) -> None:
    assert share_recognised(HELLO, hello_transcript) >= 0.5, hello_transcript.text
    assert hello_transcript.language == "en"
    assert hello_transcript.text == " ".join(segment.text for segment in hello_transcript.segments)


@requires_espeak
def test_both_sentences_are_heard(two_sentences_transcript: Transcript) -> None:
    assert share_recognised(f"{FIRST} {SECOND}", two_sentences_transcript) >= 0.4, two_sentences_transcript.text


@requires_espeak
def test_segments_are_ordered_and_inside_the_audio(
    two_sentences_transcript: Transcript, two_sentences_wav: Path
) -> None:
    duration = duration_of(two_sentences_wav)
    segments = two_sentences_transcript.segments
    assert [segment.id for segment in segments] == list(range(len(segments)))
    for segment in segments:
        assert 0.0 <= segment.start < segment.end <= duration
        assert segment.text.strip()
        assert segment.avg_logprob is not None and segment.avg_logprob <= 0.0
    for before, after in itertools.pairwise(segments):
        assert before.end <= after.start


@requires_espeak
def test_a_long_pause_splits_the_transcript_into_segments(
    two_sentences_transcript: Transcript, two_sentences_wav: Path
) -> None:
    segments = two_sentences_transcript.segments
    assert len(segments) >= 2, two_sentences_transcript.text
    # Some boundary between segments falls in the pause, which starts where the first sentence ends.
    first_sentence_end = duration_of(speak(two_sentences_wav.with_name("first.wav"), FIRST))
    pause_end = first_sentence_end + PAUSE_SEC
    assert any(
        before.end <= pause_end and after.start >= first_sentence_end for before, after in itertools.pairwise(segments)
    ), [(segment.start, segment.end, segment.text) for segment in segments]


@requires_espeak
def test_word_timestamps_when_asked(two_sentences_transcript: Transcript) -> None:
    words = two_sentences_transcript.words
    assert words
    assert [word.word for word in words] == " ".join(s.text for s in two_sentences_transcript.segments).split()
    for segment in two_sentences_transcript.segments:
        assert segment.words
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert re.fullmatch(r"[a-z'.\-]+", word.word), word.word  # no <sil>, [NOISE] or "the(2)"
    starts = [word.start for word in words]
    assert starts == sorted(starts)


@requires_espeak
def test_no_word_timestamps_unless_asked(hello_transcript: Transcript) -> None:
    assert hello_transcript.segments
    assert hello_transcript.words == []
    assert all(segment.words == [] for segment in hello_transcript.segments)


def test_silence_is_an_empty_transcript(engine: PocketsphinxEngine, tmp_path: Path) -> None:
    silence = write_audio(tmp_path / "silence.wav", fmt="wav", seconds=3.0, kind="silence")

    transcript = engine.transcribe(silence, TranscriptionOptions(word_timestamps=True))

    assert transcript.text == ""
    assert transcript.segments == []
    assert transcript.words == []


@requires_espeak
def test_concurrent_requests_share_the_decoder_safely(
    engine: PocketsphinxEngine, hello_wav: Path, hello_transcript: Transcript
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: engine.transcribe(hello_wav, TranscriptionOptions()), range(3)))

    assert all(result == hello_transcript for result in results)


@requires_espeak
def test_a_spent_deadline_stops_the_work_instead_of_overrunning(engine: PocketsphinxEngine, hello_wav: Path) -> None:
    with pytest.raises(ProviderTimeoutError):
        engine.transcribe(hello_wav, TranscriptionOptions(deadline_sec=0.2))


# --- what the engine accepts -------------------------------------------------------------------------


@pytest.mark.parametrize("language", [None, "en", "EN", "en-US", "en_us", "English"])
def test_english_is_accepted_however_it_is_spelled(engine: PocketsphinxEngine, language: str | None) -> None:
    engine.check(TranscriptionOptions(language=language))


def test_translating_english_is_accepted(engine: PocketsphinxEngine) -> None:
    engine.check(TranscriptionOptions(task="translate", language="en", temperature=0.7, prompt="Earshot"))


@pytest.mark.parametrize("language", ["fr", "de-DE", "japanese"])
def test_other_languages_are_refused_before_any_work(engine: PocketsphinxEngine, tmp_path: Path, language: str) -> None:
    never_read = tmp_path / "missing.wav"

    with pytest.raises(UnsupportedByModelError) as raised:
        engine.transcribe(never_read, TranscriptionOptions(language=language))

    assert language in raised.value.message
    assert "English" in raised.value.message
    assert "upstream" in raised.value.message
    assert raised.value.param == "language"


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.mp3", bytes(range(256)) * 40),
        ("empty.wav", b""),
        ("playlist.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n"),
        ("notes.txt", b"this is not audio at all\n" * 50),
    ],
)
def test_undecodable_files_are_invalid_audio(
    engine: PocketsphinxEngine, tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(InvalidAudioError) as raised:
        engine.transcribe(path, TranscriptionOptions())

    assert str(tmp_path) not in raised.value.message
    assert name not in raised.value.message


@pytest.mark.parametrize("where", ["missing.wav", ".", "https://example.com/audio.wav"])
def test_only_existing_local_files_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InvalidAudioError):
        decode_to_pcm16k(Path(where))


def test_a_local_name_that_looks_like_a_url_is_read_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_audio(tmp_path / "http:tone.wav", fmt="wav", seconds=1.0)

    assert len(decode_to_pcm16k(Path("http:tone.wav"))) == SAMPLE_RATE


def test_a_file_without_audio_is_invalid_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))

    with pytest.raises(InvalidAudioError, match="no audio stream"):
        decode_to_pcm16k(path)


# --- decoding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sample_rate", "channels"), [(44100, 2), (8000, 1), (48000, 1)])
def test_decoding_gives_16k_mono_int16_of_the_same_length(tmp_path: Path, sample_rate: int, channels: int) -> None:
    path = write_audio(tmp_path / "tone.wav", fmt="wav", seconds=1.5, sample_rate=sample_rate, channels=channels)

    pcm = decode_to_pcm16k(path)

    assert pcm.dtype == np.int16
    assert pcm.ndim == 1
    assert abs(len(pcm) - 1.5 * SAMPLE_RATE) <= 2
    assert np.abs(pcm.astype(np.int32)).max() > 0.2 * 32767  # the 0.3-amplitude tone survived the downmix


def test_decoding_a_video_takes_its_audio_track(tmp_path: Path) -> None:
    # The fixture's video runs a second longer than its audio.
    path = write_audio(tmp_path / "clip.mp4", fmt="mp4_video", seconds=2.0)

    assert abs(len(decode_to_pcm16k(path)) - 2.0 * SAMPLE_RATE) <= CODEC_FRAME_TOLERANCE


@requires_espeak
@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg"])
def test_compressed_speech_decodes_to_the_same_length_as_wav(hello_wav: Path, tmp_path: Path, fmt: str) -> None:
    encoded = speak(tmp_path / f"hello.{fmt}", HELLO, fmt=fmt)

    assert abs(len(decode_to_pcm16k(encoded)) - len(decode_to_pcm16k(hello_wav))) <= CODEC_FRAME_TOLERANCE
