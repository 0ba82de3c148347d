"""How many samples a file's audio really holds, read from its frames and packets, never from a length header.

One module per container family. Each ``*_length`` function takes the file's bytes (an ``mmap``) and what
ffprobe identified, and returns an ``AudioLength``: the samples a decoder outputs once the encoder delay and
padding the stream declares are trimmed (gapless), or ``None`` when the file uses a variant the walker does
not read (the caller then falls back to counting packets with ffprobe). Every walker only counts frames whose
bytes are present, so a truncated file is billed for what decodes, and a header that disagrees with the data
(a total-samples field, a granule position, a Duration element, a sample table entry, a Xing frame count, a
RIFF size) can never raise or lower the count by more than the trimming it is allowed to describe.
"""

from __future__ import annotations

from earshot.audio.lengths.common import AudioLength
from earshot.audio.lengths.walk import walk_length

__all__ = ["AudioLength", "walk_length"]
