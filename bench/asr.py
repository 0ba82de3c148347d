"""Speech recognition benchmark, per embedded Whisper SKU: WER per corpus, speed, CPU, peak RSS, load time, and
language identification. ``python -m bench asr`` runs only this part.

Each SKU is measured in a fresh interpreter (``python -m bench.asr WORKER <sku>``), so its load time is a cold
load and its peak RSS is that SKU's alone (for the English-only SKU it includes the multilingual model it uses
to identify the language).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # recordings, speech_scoring, speech_fixtures

SKUS = ("whisper-base", "whisper-tiny-en")
DEFAULT_SKU = "whisper-base"
TARGETS = {"librivox_wer": 0.06, "rtf_60s": 0.25, "peak_rss_mb": 700.0}
LONG_SPEECH_SEC = 60.0
TWO_THREAD_EFFICIENCY = 0.83  # two CTranslate2 threads vs one on this machine (docs/decisions.md, 2026-12-01)

ESPEAK_ENGLISH = (
    "For too long, I have watched mortals suffer.",
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "We will meet at the station at half past seven tomorrow morning.",
)
ESPEAK_FOREIGN = {
    "de": (
        "Guten Morgen, wie geht es Ihnen heute? Ich möchte gerne einen Kaffee bestellen.",
        "Das Wetter in Berlin ist heute sehr schön, und wir gehen im Park spazieren.",
        "Der Zug nach München fährt um halb acht vom Hauptbahnhof ab.",
    ),
    "es": (
        "Buenos días, me gustaría reservar una mesa para dos personas esta noche.",
        "La ciudad de Madrid tiene muchos museos y parques muy bonitos.",
        "Mañana vamos a la playa con nuestros amigos si hace buen tiempo.",
    ),
}


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(samples.astype(np.int16).tobytes())
    return path


def _corpora(work: Path) -> dict[str, list[tuple[Path, str]]]:
    from recordings import cards, have_pyannote_sample, have_testdata, librivox, pyannote_sample, pyannote_transcript
    from speech_fixtures import have_espeak, speak

    corpora: dict[str, list[tuple[Path, str]]] = {}
    if have_testdata():
        corpora["librivox"] = [(u.path, u.text) for u in librivox()]
        corpora["cards"] = [(u.path, u.text) for u in cards()]
    if have_pyannote_sample():
        call, _ = pyannote_sample(work)
        corpora["pyannote call"] = [(call, pyannote_transcript().text)]
    if have_espeak():
        corpora["espeak-ng English"] = [
            (speak(work / f"en{i}.wav", text), text) for i, text in enumerate(ESPEAK_ENGLISH)
        ]
    return corpora


def _long_speech(work: Path, corpora: dict[str, list[tuple[Path, str]]]) -> tuple[Path, str]:
    """60 s of real speech: the recordings one after another (with 0.3 s pauses), repeated as needed."""
    from earshot.audio.decode import decode_to_pcm16k

    pieces: list[np.ndarray] = []
    texts: list[str] = []
    pause = np.zeros(4_800, dtype=np.int16)
    clips = [item for name in ("pyannote call", "librivox", "cards") for item in corpora.get(name, [])]
    total = 0
    while clips and total < LONG_SPEECH_SEC * 16_000:
        for path, text in clips:
            pcm = decode_to_pcm16k(path)
            pieces += [pcm, pause]
            texts.append(text)
            total += len(pcm) + len(pause)
            if total >= LONG_SPEECH_SEC * 16_000:
                break
    joined = np.concatenate(pieces)[: int(LONG_SPEECH_SEC * 16_000)]
    return _write_wav(work / "long.wav", joined), " ".join(texts)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(sku: str) -> dict[str, Any]:
    """Measure one SKU in this (fresh) process; return the figures as a dict."""
    from speech_scoring import word_error_rate

    from earshot.catalog import load_catalog
    from earshot.config import Settings
    from earshot.engines.base import TranscriptionOptions
    from earshot.engines.embedded import LANGUAGE_ID_ASSET, LazyWhisper
    from earshot.engines.whisper_engine import BEAM_SIZE, cpu_threads, load_model
    from earshot.errors import UnsupportedByModelError

    model = load_catalog(Settings().resolved_catalog()).resolve_transcription(sku)
    engine = LazyWhisper(sku=model.sku, asset=model.upstream_model, languages=model.languages)
    figures: dict[str, Any] = {
        "sku": sku,
        "beam_size": BEAM_SIZE,
        "threads": cpu_threads(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
    }

    wall, cpu = time.perf_counter(), _cpu()
    load_model(model.upstream_model)
    if not engine.capabilities.multilingual:
        load_model(LANGUAGE_ID_ASSET)
    figures["load_sec"] = round(time.perf_counter() - wall, 2)
    figures["load_cpu_sec"] = round(_cpu() - cpu, 2)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        corpora = _corpora(work)
        figures["wer"] = {}
        english_detected: list[bool] = []
        for name, items in corpora.items():
            hypotheses = []
            for path, _text in items:
                transcript = engine.transcribe(path, TranscriptionOptions())
                hypotheses.append(transcript.text)
                if name != "espeak-ng English":
                    english_detected.append(transcript.language == "en")
            figures["wer"][name] = {
                "wer": round(word_error_rate([t for _, t in items], hypotheses), 4),
                "utterances": len(items),
                "words": sum(len(t.split()) for _, t in items),
            }
        figures["real_english_detected"] = [sum(english_detected), len(english_detected)]

        long_path, long_text = _long_speech(work, corpora)
        wall, cpu = time.perf_counter(), _cpu()
        transcript = engine.transcribe(long_path, TranscriptionOptions())
        elapsed, spent = time.perf_counter() - wall, _cpu() - cpu
        figures["long"] = {
            "audio_sec": LONG_SPEECH_SEC,
            "wall_sec": round(elapsed, 2),
            "rtf": round(elapsed / LONG_SPEECH_SEC, 3),
            "cpu_per_audio_sec": round(spent / LONG_SPEECH_SEC, 3),
            "wer": round(word_error_rate([long_text], [transcript.text]), 4),
        }

        from speech_fixtures import have_espeak, speak

        figures["foreign"] = {}
        if have_espeak():
            for language, sentences in ESPEAK_FOREIGN.items():
                for voice in (language, f"{language}+klatt4"):
                    outcomes = []
                    for i, sentence in enumerate(sentences):
                        path = speak(work / f"{language}{i}.wav", sentence, voice=voice, words_per_minute=175)
                        try:
                            heard = engine.transcribe(path, TranscriptionOptions())
                            outcomes.append(heard.language)
                        except UnsupportedByModelError:
                            outcomes.append("refused")
                    figures["foreign"][voice] = outcomes

    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def _machine() -> str:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores"


def run() -> list[dict[str, Any]]:
    """Every SKU, each in a fresh interpreter."""
    results = []
    for sku in SKUS:
        done = subprocess.run(
            [sys.executable, "-m", "bench.asr", "WORKER", sku],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if done.returncode != 0:
            raise SystemExit(f"ASR bench for {sku} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def render(results: list[dict[str, Any]]) -> str:
    corpora = sorted({name for r in results for name in r["wer"]}, key=lambda n: list(results[0]["wer"]).index(n))
    loads = [r[key] for r in results for key in ("load_average_at_start", "load_average_at_end")]
    default_long = next(r for r in results if r["sku"] == DEFAULT_SKU)["long"]
    idle_rtf = default_long["cpu_per_audio_sec"] / (results[0]["threads"] * TWO_THREAD_EFFICIENCY)
    lines = [
        "## Speech recognition (embedded Whisper)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python -m bench asr` on {_machine()}, shared with the other"
        f" engineers' work: the 1-minute load average was {min(loads):.1f}-{max(loads):.1f} during the run. Wall"
        " times and the real-time factor grow with that load; the CPU-seconds column does not, and is the figure"
        f" to compare: {default_long['cpu_per_audio_sec']} CPU-s per audio-second on {results[0]['threads']} threads"
        f" ({TWO_THREAD_EFFICIENCY:.0%} parallel efficiency) is about {idle_rtf:.2f}x real time on an idle 2-core"
        " machine (an estimate from the CPU figure, not a measurement).",
        "",
        "Method: `python -m bench asr`. Each SKU runs in a fresh interpreter: the model loads cold (load time and",
        "its CPU), then every corpus is transcribed with the request defaults (no `language`, temperature 0 with",
        f"fallback, beam {results[0]['beam_size']}, int8, {results[0]['threads']} CTranslate2 threads, speech found",
        "by Silero VAD). WER is corpus-level (word edits / reference words) after light normalisation (case,",
        "punctuation, hyphens, titles, small numbers: `tests/speech_scoring.py`). Corpora: LibriVox read speech",
        "and spoken card names from Debian `pocketsphinx-testdata`; the 30 s two-speaker telephone call from the",
        "`pyannote.audio` 4.0.7 wheel (reference: its `sample.stm`); espeak-ng English (synthetic, a hard test).",
        f"Speed: {LONG_SPEECH_SEC:.0f} s of real speech (the recordings above joined) transcribed once; real-time",
        "factor = wall time / audio time; CPU-seconds per audio-second count both cores, and are the steadier",
        "figure on this shared machine. Peak RSS: the process's high-water mark after all of the above.",
        "",
        "| SKU | " + " | ".join(f"WER {name}" for name in corpora) + " | load s (CPU s) |"
        f" {LONG_SPEECH_SEC:.0f} s speech: wall s | RTF | CPU s / audio s | peak RSS MB |",
        "|---|" + "---|" * len(corpora) + "---|---|---|---|---|",
    ]
    for r in results:
        wer = " | ".join(
            f"{r['wer'][n]['wer'] * 100:.1f} % ({r['wer'][n]['words']} w)" if n in r["wer"] else "n/a" for n in corpora
        )
        long = r["long"]
        lines.append(
            f"| `{r['sku']}` | {wer} | {r['load_sec']} ({r['load_cpu_sec']}) | {long['wall_sec']} | {long['rtf']} |"
            f" {long['cpu_per_audio_sec']} | {r['peak_rss_mb']} |"
        )
    lines += ["", "Language identification (no `language` given):", ""]
    for r in results:
        detected, total = r["real_english_detected"]
        foreign = "; ".join(f"espeak `{voice}`: {', '.join(heard)}" for voice, heard in r["foreign"].items())
        lines.append(f"- `{r['sku']}`: real English utterances detected as English {detected}/{total}; {foreign}.")
    default = next(r for r in results if r["sku"] == DEFAULT_SKU)
    librivox = default["wer"].get("librivox", {}).get("wer")
    detected, total = default["real_english_detected"]
    german_spanish = all(
        heard == [voice[:2]] * len(heard) for voice, heard in default["foreign"].items() if voice[:2] in ("de", "es")
    )
    lines += [
        "",
        "Targets (default SKU `transcribe` = `whisper-base`):",
        "",
        f"- WER ≤ 6 % on LibriVox: {librivox * 100:.1f} % ({_verdict(librivox <= TARGETS['librivox_wer'])})"
        if librivox is not None
        else "- WER on LibriVox: not measured (pocketsphinx-testdata missing)",
        f"- every real English utterance detected as English: {detected}/{total} ({_verdict(detected == total)})",
        f"- espeak-ng German and Spanish detected without a hint: ({_verdict(german_spanish)})",
        f"- 60 s of speech in ≤ 0.25x real time: {default['long']['rtf']}x"
        f" ({_verdict(default['long']['rtf'] <= TARGETS['rtf_60s'])}; CPU {default['long']['cpu_per_audio_sec']} s"
        " per audio second)",
        f"- peak RSS ≤ 700 MB: {default['peak_rss_mb']} MB"
        f" ({_verdict(default['peak_rss_mb'] <= TARGETS['peak_rss_mb'])})",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "WORKER":
        print(json.dumps(worker(sys.argv[2])))
    else:
        print(render(run()))
