"""Real recordings from pinned registry packages, for tests and bench (``make setup`` fetches them; never committed).

- Debian ``pocketsphinx-testdata`` (BSD-2): LibriVox read speech with its transcription, and five "cards" utterances.
- The ``pyannote.audio==4.0.7`` wheel (MIT), read as a zip and never installed: ``sample.wav``, a real 30 s
  two-speaker telephone call, with its speaker turns in ``sample.rttm`` and what is said in ``sample.stm``.

A test that needs one uses the ``requires_*`` markers: it skips with the reason when the recording is absent, except
under CI (``CI`` set), where an absent recording is a failed setup and fails the test.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

POCKETSPHINX_TESTDATA = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX_DIR = POCKETSPHINX_TESTDATA / "librivox"
CARDS_DIR = POCKETSPHINX_TESTDATA / "cards"

RECORDINGS_DIR = Path(os.environ.get("EARSHOT_RECORDINGS_DIR") or Path(sys.prefix) / "share" / "earshot-recordings")
PYANNOTE_WHEEL = RECORDINGS_DIR / "pyannote_audio-4.0.7-py3-none-any.whl"
# Inside the wheel, with their SHA-256 (read 2026-12-01).
PYANNOTE_SAMPLE = (
    "pyannote/audio/sample/sample.wav",
    "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e",
)
PYANNOTE_RTTM = (
    "pyannote/audio/sample/sample.rttm",
    "d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87",
)
PYANNOTE_STM = ("pyannote/audio/sample/sample.stm", "f861f3004927e1c4429199f9695bfd252def75d7d5e4bdf735d3d85fd4a667f7")

_FETCH_HINT = "run `make setup` (it apt-installs pocketsphinx-testdata and downloads the pyannote.audio wheel)"


@dataclass(frozen=True)
class Utterance:
    path: Path
    text: str  # the reference transcription, lower case, as the corpus spells it


def _marker(present: bool, what: str) -> pytest.MarkDecorator:
    # Under CI the setup must have fetched it: a skip would hide a broken install step, so the test runs and fails.
    skip = not present and not os.environ.get("CI")
    return pytest.mark.skipif(skip, reason=f"{what} is not here: {_FETCH_HINT}")


def have_testdata() -> bool:
    return (LIBRIVOX_DIR / "transcription").is_file() and (CARDS_DIR / "cards.transcription").is_file()


def have_pyannote_sample() -> bool:
    return PYANNOTE_WHEEL.is_file()


requires_testdata = _marker(have_testdata(), "Debian pocketsphinx-testdata")
requires_pyannote_sample = _marker(have_pyannote_sample(), f"the pyannote.audio wheel ({PYANNOTE_WHEEL})")


_SPHINX_LINE = re.compile(r"^<s>\s*(?P<text>.*?)\s*</s>\s*\((?P<id>[^)]+)\)\s*$")


def _sphinx_transcription(directory: Path, listing: str) -> list[Utterance]:
    utterances = []
    for line in (directory / listing).read_text().splitlines():
        match = _SPHINX_LINE.match(line.strip())
        if match:
            path = directory / f"{Path(match['id']).name}.wav"
            utterances.append(Utterance(path, " ".join(match["text"].split())))
    return utterances


def librivox() -> list[Utterance]:
    """Five LibriVox utterances from *Sense and Sensibility* (one reader, 16 kHz), with their transcription."""
    return _sphinx_transcription(LIBRIVOX_DIR, "transcription")


def cards() -> list[Utterance]:
    """Five short utterances naming playing cards ("ten of clubs"), with their transcription."""
    return _sphinx_transcription(CARDS_DIR, "cards.transcription")


def _extract(member: tuple[str, str], directory: Path) -> Path:
    name, sha256 = member
    with zipfile.ZipFile(PYANNOTE_WHEEL) as wheel:
        data = wheel.read(name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise AssertionError(f"{name} in {PYANNOTE_WHEEL} has SHA-256 {digest}, pinned {sha256}")
    path = directory / Path(name).name
    path.write_bytes(data)
    return path


def pyannote_sample(directory: Path) -> tuple[Path, Path]:
    """Extract the pyannote call (``sample.wav``) and its turns (``sample.rttm``) into ``directory``, verified."""
    return _extract(PYANNOTE_SAMPLE, directory), _extract(PYANNOTE_RTTM, directory)


def pyannote_transcript() -> Utterance:
    """What is said in the pyannote call (from ``sample.stm``, turns joined in time order); ``path`` is the wheel."""
    with zipfile.ZipFile(PYANNOTE_WHEEL) as wheel:
        data = wheel.read(PYANNOTE_STM[0])
    if hashlib.sha256(data).hexdigest() != PYANNOTE_STM[1]:
        raise AssertionError(f"{PYANNOTE_STM[0]} in {PYANNOTE_WHEEL} differs from its pinned SHA-256")
    turns = []
    for line in data.decode().splitlines():
        _session, _channel, _speaker, start, _end, *words = line.split()
        turns.append((float(start), " ".join(words)))
    return Utterance(PYANNOTE_WHEEL, " ".join(text for _, text in sorted(turns)))
