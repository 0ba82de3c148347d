"""``make sample``: a short real speech clip and the JSON request bodies the README's examples send.

The speech is five LibriVox sentences from Debian's pocketsphinx-testdata (read from /usr/share, never
committed), joined into one 16 kHz mono WAV of about 25 s, and the shortest of them alone (samples/short.wav,
3 s). The JSON bodies embed the short one as base64, so that curl reads them with ``--data @file`` instead of
an argument list too long for the shell.
"""

from __future__ import annotations

import base64
import json
import sys
import wave
from pathlib import Path

SOURCE = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIPS = ("0870", "0880", "0890", "0920", "0930")
HERE = Path(__file__).resolve().parent


def main() -> int:
    clips = [SOURCE / f"sense_and_sensibility_01_austen_64kb-{number}.wav" for number in CLIPS]
    missing = [str(clip) for clip in clips if not clip.is_file()]
    if missing:
        print(f"missing {missing[0]}: install Debian's pocketsphinx-testdata (make setup does)", file=sys.stderr)
        return 1
    speech = HERE / "speech.wav"
    with wave.open(str(speech), "wb") as out:
        for index, clip in enumerate(clips):
            with wave.open(str(clip), "rb") as source:
                if index == 0:
                    out.setparams(source.getparams())
                out.writeframes(source.readframes(source.getnframes()))
    short = HERE / "short.wav"
    short.write_bytes(clips[1].read_bytes())  # "he was not an ill disposed young man"
    data_url = "data:audio/wav;base64," + base64.b64encode(short.read_bytes()).decode()
    bodies = {
        "understanding.json": {"audio": data_url, "prompt": "What is said, and how does it sound?", "sync": True},
        "extract.json": {
            "inputMethod": "base64",
            "audio": data_url,
            "prompt": "Return the duration and the speech share",
            "jsonMode": True,
        },
        "upload.json": {
            "filename": "speech.wav",
            "bytes": speech.stat().st_size,
            "process": {"kind": "transcription", "options": {"response_format": "verbose_json"}},
        },
    }
    for name, body in bodies.items():
        (HERE / name).write_text(json.dumps(body))
    print(f"wrote speech.wav, short.wav, {', '.join(bodies)} in samples/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
