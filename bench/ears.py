"""The ears: voice activity, sound-event tagging and diarization, on generated clips and the real pyannote call.

Run alone with ``.venv/bin/python -m bench.ears`` (prints its section); ``make bench`` puts the section in
docs/benchmarks.md. Each engine is timed in CPU seconds (``time.process_time``: steadier than wall time on a shared
machine) per second of audio; peak RSS comes from a fresh interpreter that loads the three models and runs them
once on the call (``ru_maxrss`` of that child).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the shared generated clips and recordings

_NOT_SPEECH = ("white noise", "pink noise", "440 Hz tone", "siren (wail)", "siren (two-tone)",
               "synth music with drums", "silence")  # fmt: skip


def _cpu(work: Any) -> tuple[Any, float]:
    started = time.process_time()
    result = work()
    return result, time.process_time() - started


def main() -> dict[str, Any]:
    import numpy as np
    from recordings import have_pyannote_sample, pyannote_sample
    from sound_fixtures import GENERATED, _harmonics, _pcm, _time, attributed_share, mix, rttm_turns

    from earshot.audio.decode import decode_to_pcm16k
    from earshot.engines.hearing import get_ears
    from earshot.engines.sound_events import events, top_classes
    from earshot.engines.speakers import diarize
    from earshot.engines.vad import speech_seconds

    ears = get_ears()
    clips = {name: make() for name, make in GENERATED.items()}
    # The same two-tone siren without the horn-speaker clipping: a known miss, reported as such.
    t = _time(8.0)
    clips["siren (two-tone, unclipped)"] = _pcm(
        _harmonics(2 * np.pi * np.cumsum(np.where((t % 1) < 0.5, 960.0, 770.0)) / 16000)
    )
    results: dict[str, Any] = {"vad": [], "tags": [], "cpu": {}}
    with tempfile.TemporaryDirectory() as tmp:
        speech = None
        try:
            from speech_fixtures import have_espeak, speak

            if have_espeak():
                speech = decode_to_pcm16k(
                    speak(Path(tmp) / "s.wav", "For too long, I have watched mortals suffer. The quick brown fox "
                          "jumps over the lazy dog. Tomorrow we will travel to the coast and see the ocean.")
                )  # fmt: skip
        except ImportError:
            speech = None
        if speech is not None:
            clips["espeak speech"] = speech
            clips["espeak speech over synth music"] = mix(speech, GENERATED["synth music with drums"](), 0.3)
        vad_cpu = tag_cpu = audio_sec = 0.0
        for name, pcm in clips.items():
            seconds = len(pcm) / 16000
            regions, used = _cpu(lambda pcm=pcm: ears.vad.regions(pcm))
            vad_cpu += used
            tags, used = _cpu(lambda pcm=pcm: ears.tagger.scores(pcm))
            tag_cpu += used
            audio_sec += seconds
            results["vad"].append({"clip": name, "speech_share": round(speech_seconds(regions) / seconds, 3),
                                   "target": "0 %" if name in _NOT_SPEECH else ""})  # fmt: skip
            timeline = [e for e in events(tags, ears.tagger.labels) if e.score >= 0.5 or e.end - e.start >= 1.4]
            results["tags"].append(
                {
                    "clip": name,
                    "top": [f"{label} {score:.2f}" for label, score in top_classes(tags, ears.tagger.labels, 3)],
                    "events": sorted({e.label for e in timeline})[:6],
                }
            )
        results["cpu"]["vad_per_audio_sec"] = round(vad_cpu / audio_sec, 4)
        results["cpu"]["tagger_per_audio_sec"] = round(tag_cpu / audio_sec, 4)
        if have_pyannote_sample():
            wav, rttm = pyannote_sample(Path(tmp))
            pcm = decode_to_pcm16k(wav)
            regions = ears.vad.regions(pcm)
            result, used = _cpu(lambda: diarize(ears.encoder, pcm, regions))
            reference = rttm_turns(rttm)
            hypothesis = [(turn.start, turn.end, str(turn.speaker)) for turn in result.turns]
            grid = np.arange(0, len(pcm) / 16000, 0.01) + 0.005
            truth = np.any([(grid >= a) & (grid < b) for a, b, _ in reference], axis=0)
            found = np.any([(grid >= r.start) & (grid < r.end) for r in regions], axis=0)
            results["diarization"] = {
                "speakers": result.speaker_count,
                "attributed": round(attributed_share(reference, hypothesis), 3),
                "vad_frame_accuracy": round(float(np.mean(truth == found)), 3),
                "cpu_per_speech_sec": round(used / speech_seconds(regions), 3),
            }
            results["rss_mb"] = _peak_rss(wav)
    return results


def _peak_rss(wav: Path) -> float:
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from earshot.audio.decode import decode_to_pcm16k\n"
        "from earshot.engines.hearing import get_ears\n"
        f"pcm = decode_to_pcm16k(Path({str(wav)!r}))\n"
        "get_ears().hear(pcm, speakers=True)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)


def render(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Ears: voice activity, sound events, speakers",
        "",
        "Method: `python -m bench.ears`. Generated 8-s clips (tests/sound_fixtures.py: sirens, noise, a tone,",
        "silence, a synth loop with drums) and espeak-ng speech, alone and over the music; the real two-speaker",
        "call from the pyannote.audio 4.0.7 wheel scored against its sample.rttm (share of reference speech time",
        "given the right speaker under the best label mapping, 10-ms grid). CPU seconds per audio second from",
        "`time.process_time`; peak RSS of a fresh interpreter that loads all three models and hears the call.",
        "",
        "| clip | speech share (Silero VAD) | target | top AudioSet classes (YAMNet) | events (≥ 0.5 or ≥ 1.4 s) |",
        "|---|---|---|---|---|",
    ]
    tags = {row["clip"]: row for row in results["tags"]}
    for row in results["vad"]:
        target = row["target"]
        verdict = f"{target} ({'meets' if row['speech_share'] == 0 else 'MISSES'})" if target else ""
        tag = tags[row["clip"]]
        lines.append(
            f"| {row['clip']} | {row['speech_share']:.0%} | {verdict} | {', '.join(tag['top'])} |"
            f" {', '.join(tag['events'])} |"
        )
    lines += ["", "| engine | figure |", "|---|---|"]
    lines.append(f"| Silero VAD | {results['cpu']['vad_per_audio_sec']} CPU-s per audio-s |")
    lines.append(f"| YAMNet tagger (incl. log-mel) | {results['cpu']['tagger_per_audio_sec']} CPU-s per audio-s |")
    if "diarization" in results:
        d = results["diarization"]
        lines.append(f"| GE2E diarization | {d['cpu_per_speech_sec']} CPU-s per speech-s |")
        lines.append(f"| peak RSS, all three models on the call | {results['rss_mb']} MB |")
        ok = d["speakers"] == 2 and d["attributed"] >= 0.9
        lines += [
            "",
            f"Diarization of the pyannote call: {d['speakers']} speakers found (target 2); "
            f"{d['attributed']:.1%} of the reference speech time attributed to the right speaker (target ≥ 90 %: "
            f"{'meets' if ok else 'MISSES'}); VAD frame accuracy against the reference turns "
            f"{d['vad_frame_accuracy']:.1%}.",
        ]
    return lines


if __name__ == "__main__":
    outcome = main()
    print(json.dumps(outcome, indent=1))
    print("\n".join(render(outcome)))
    print("max RSS of this process (MB):", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
