"""Who speaks when: GE2E speaker embeddings (Resemblyzer's pretrained encoder, run in numpy) and clustering.

The weights are ``resemblyzer/pretrained.pt`` from the ``resemblyzer`` 0.1.4 wheel (Apache-2.0), installed with
``--no-deps`` and read as data: it is a *legacy* torch pickle (torch < 1.6: a pickle stream of magic number,
protocol version and system info, then the state dict pickled with persistent storage ids, then the storage
keys and each storage's raw little-endian bytes). ``load_legacy_state_dict`` reads it with a restricted
unpickler that knows exactly three globals (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch.FloatStorage``) and builds numpy arrays; nothing in the file can run code, and torch is not needed.

The model (Wan et al., "Generalized End-to-End Loss for Speaker Verification"): 40-band mel power spectrogram
(25-ms window, 10-ms hop, librosa's Slaney mel scale), a 3-layer LSTM of 256 units, a linear layer to 256,
ReLU, L2 normalisation. An utterance's embedding is the L2-normalised mean of the embeddings of its 1.6-s
partial windows (50 % overlap); the cosine of two embeddings says how alike two voices are.

Diarization here: embeddings of 1.6-s windows every 0.4 s inside the VAD's speech regions, agglomerative
clustering (average linkage, cosine) stopped at a distance threshold, tiny clusters folded into their nearest
neighbour, then every 0.4-s step of speech takes the speaker of the windows around it.
"""

from __future__ import annotations

import itertools
import pickle
import string
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import numpy.typing as npt

from earshot.engines.vad import SpeechRegion

SAMPLE_RATE = 16_000
_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
_PARTIAL_STEP = 80  # 50 % overlap, for utterance embeddings
_TARGET_DBFS = -30.0  # Resemblyzer raises quiet audio to this level before embedding (never lowers it)
_LAYERS = 3
_HIDDEN = 256

F32 = npt.NDArray[np.float32]


# --------------------------------------------------------------------------------------------------------------
# Reading the legacy torch pickle without torch
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Storage:
    key: str
    numel: int
    data: F32 | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


class _FloatStorage:
    """Stands in for ``torch.FloatStorage`` as the storage type named inside persistent ids."""


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch", "FloatStorage"): _FloatStorage,
    }

    def __init__(self, handle: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(handle)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file") from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or pid[0] != "storage" or pid[1] is not _FloatStorage:
            raise pickle.UnpicklingError("only float storages are expected in this weights file")
        _, _, key, _location, numel, view = pid
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return self._storages.setdefault(str(key), _Storage(str(key), int(numel)))


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file header")


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def load_legacy_state_dict(path: Path) -> dict[str, F32]:
    """The tensors of a legacy (pre-zip) torch pickle of float tensors, as numpy arrays."""
    storages: dict[str, _Storage] = {}
    with path.open("rb") as handle:
        if _DataOnly(handle).load() != _LEGACY_MAGIC:
            raise ValueError(f"{path.name} is not a legacy torch pickle")
        if _DataOnly(handle).load() != 1001:
            raise ValueError(f"{path.name}: unexpected torch pickle protocol")
        info = _DataOnly(handle).load()
        if not isinstance(info, dict) or not info.get("little_endian"):
            raise ValueError(f"{path.name}: only little-endian files are supported")
        state = _RestrictedUnpickler(handle, storages).load()
        keys = _DataOnly(handle).load()
        for key in keys:
            storage = storages[str(key)]
            numel = int(np.frombuffer(handle.read(8), dtype="<i8")[0])
            if numel != storage.numel:
                raise ValueError(f"{path.name}: storage {key} holds {numel} values, expected {storage.numel}")
            raw = handle.read(4 * numel)
            if len(raw) != 4 * numel:
                raise ValueError(f"{path.name} is truncated")
            storage.data = np.frombuffer(raw, dtype="<f4")
    flat = state.get("model_state", state) if isinstance(state, dict) else None
    if not isinstance(flat, dict):
        raise ValueError(f"{path.name} holds no state dict")
    tensors: dict[str, F32] = {}
    for name, ref in flat.items():
        if not isinstance(ref, _TensorRef) or ref.storage.data is None:
            continue
        itemsize = ref.storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            ref.storage.data[ref.offset :],
            shape=ref.size,
            strides=tuple(step * itemsize for step in ref.stride),
            writeable=False,
        )
        tensors[str(name)] = np.array(view, dtype=np.float32)
    return tensors


# --------------------------------------------------------------------------------------------------------------
# Front end (librosa.feature.melspectrogram with Resemblyzer's settings, in numpy)
# --------------------------------------------------------------------------------------------------------------


def _hz_to_slaney_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = hz / (200.0 / 3)
    log_region = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    out: npt.NDArray[np.float64] = np.where(hz >= 1000.0, log_region, linear)
    return out


def _slaney_mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * (200.0 / 3)
    log_region = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    out: npt.NDArray[np.float64] = np.where(mel >= 15.0, log_region, linear)
    return out


def _mel_filters() -> npt.NDArray[np.float64]:
    """``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``: Slaney scale and area normalisation, (40, 201)."""
    fft_freqs = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE)
    mel_points = _slaney_mel_to_hz(
        np.linspace(_hz_to_slaney_mel(np.array(0.0)), _hz_to_slaney_mel(np.array(SAMPLE_RATE / 2)), _MELS + 2)
    )
    spacing = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    weights = np.zeros((_MELS, len(fft_freqs)))
    for band in range(_MELS):
        lower = -ramps[band] / spacing[band]
        upper = ramps[band + 2] / spacing[band + 1]
        weights[band] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : _MELS + 2] - mel_points[:_MELS]))[:, None]
    return weights


_MEL = _mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic Hann


def mel_frames(waveform: F32) -> F32:
    """Mel power spectrogram, (frames, 40): centred frames (zero padded), as librosa computes it."""
    padded = np.pad(waveform.astype(np.float64), _N_FFT // 2)
    count = 1 + (len(padded) - _N_FFT) // _HOP
    if count <= 0:
        return np.zeros((0, _MELS), dtype=np.float32)
    index = np.arange(count)[:, None] * _HOP + np.arange(_N_FFT)
    power = np.square(np.abs(np.fft.rfft(padded[index] * _WINDOW, axis=1)))
    return (power @ _MEL.T).astype(np.float32)


def normalise_volume(waveform: F32) -> F32:
    """Raise the level to -30 dBFS RMS (never lower it), as Resemblyzer's preprocessing does."""
    rms = float(np.sqrt(np.mean(np.square(waveform.astype(np.float64))))) if len(waveform) else 0.0
    if rms <= 0:
        return waveform
    change_db = _TARGET_DBFS - 20 * np.log10(rms)
    return waveform if change_db < 0 else (waveform * 10 ** (change_db / 20)).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# The encoder
# --------------------------------------------------------------------------------------------------------------


def _one_blas_thread() -> AbstractContextManager[object]:
    """The LSTM multiplies small matrices 480 times per batch: BLAS threads cost more than they give (13x slower
    wall time on a busy 2-core machine, measured 2026-12-02), so they are limited to one while it runs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the engines extra installs it
        return nullcontext()
    limits: AbstractContextManager[object] = threadpool_limits(limits=1, user_api="blas")
    return limits


def _sigmoid(x: F32) -> F32:
    out: F32 = (1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)
    return out


class SpeakerEncoder:
    """GE2E from ``pretrained.pt``: ``embed_windows`` (batched partials) and ``embed`` (one utterance)."""

    def __init__(self, weights: Path) -> None:
        tensors = load_legacy_state_dict(weights)
        self._layers: list[tuple[F32, F32, F32]] = []
        for layer in range(_LAYERS):
            w_ih = tensors[f"lstm.weight_ih_l{layer}"]
            w_hh = tensors[f"lstm.weight_hh_l{layer}"]
            bias = tensors[f"lstm.bias_ih_l{layer}"] + tensors[f"lstm.bias_hh_l{layer}"]
            if w_hh.shape != (4 * _HIDDEN, _HIDDEN):
                raise ValueError("unexpected LSTM shape in the speaker encoder weights")
            self._layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
        self._linear_w = np.ascontiguousarray(tensors["linear.weight"].T)
        self._linear_b = tensors["linear.bias"]
        self._lock = threading.Lock()

    def embed_mels(self, mels: F32) -> F32:
        """Embeddings of a batch of mel windows, shape (batch, frames, 40) -> (batch, 256), L2-normalised."""
        sequence = mels.astype(np.float32)
        batch, steps, _ = sequence.shape
        hidden = np.zeros((batch, _HIDDEN), dtype=np.float32)
        for w_ih, w_hh, bias in self._layers:
            projected = sequence @ w_ih + bias  # (batch, steps, 4 * hidden): gates i, f, g, o (torch's order)
            hidden = np.zeros((batch, _HIDDEN), dtype=np.float32)
            cell = np.zeros((batch, _HIDDEN), dtype=np.float32)
            outputs = np.empty((batch, steps, _HIDDEN), dtype=np.float32)
            for step in range(steps):
                gates = projected[:, step] + hidden @ w_hh
                i = _sigmoid(gates[:, :_HIDDEN])
                f = _sigmoid(gates[:, _HIDDEN : 2 * _HIDDEN])
                g = np.tanh(gates[:, 2 * _HIDDEN : 3 * _HIDDEN])
                o = _sigmoid(gates[:, 3 * _HIDDEN :])
                cell = f * cell + i * g
                hidden = o * np.tanh(cell)
                outputs[:, step] = hidden
            sequence = outputs
        raw = np.maximum(hidden @ self._linear_w + self._linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        out: F32 = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def embed_windows(self, waveform: F32, starts: Sequence[int], batch: int = 64) -> F32:
        """Embeddings of 1.6-s windows of ``waveform`` (float, 16 kHz) starting at sample offsets ``starts``."""
        if not len(starts):
            return np.zeros((0, 256), dtype=np.float32)
        mels = mel_frames(waveform)
        frame_starts = [start // _HOP for start in starts]
        needed = max(frame_starts) + PARTIAL_FRAMES
        if needed > len(mels):
            mels = np.concatenate([mels, np.zeros((needed - len(mels), _MELS), dtype=np.float32)])
        windows = np.stack([mels[first : first + PARTIAL_FRAMES] for first in frame_starts])
        with self._lock, _one_blas_thread():
            return np.concatenate([self.embed_mels(windows[i : i + batch]) for i in range(0, len(windows), batch)])

    def embed(self, waveform: F32) -> F32:
        """One utterance's embedding: the normalised mean of its 1.6-s windows at 50 % overlap."""
        audio = normalise_volume(waveform)
        step = _PARTIAL_STEP * _HOP
        length = PARTIAL_FRAMES * _HOP
        starts = list(range(0, max(1, len(audio) - length + step), step))
        # Resemblyzer keeps a last, zero-padded window only when it is at least 75 % covered.
        if len(starts) > 1 and (len(audio) - starts[-1]) / length < 0.75:
            starts.pop()
        mean = self.embed_windows(audio, starts).mean(axis=0)
        out: F32 = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return out


# --------------------------------------------------------------------------------------------------------------
# Clustering and turns
# --------------------------------------------------------------------------------------------------------------

WINDOW_SEC = PARTIAL_FRAMES * _HOP / SAMPLE_RATE  # 1.6
STEP_SEC = 0.4
# Average-linkage cosine distance above which two clusters are different voices. GE2E same-speaker windows sit
# at cosine >= ~0.75 even on telephone audio; tuned on the pyannote call and espeak voices (docs/benchmarks.md).
DISTANCE_THRESHOLD = 0.3
ASSIGN_STEP_SEC = 0.2  # resolution of the turns
_ASSIGN_WIDTH_SEC = 1.0
MIN_SPEAKER_SHARE = 0.08  # a cluster with less of the speech than this is folded into its nearest neighbour
MIN_SPEAKER_SEC = 1.5


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: int


def agglomerate(embeddings: F32, threshold: float) -> npt.NDArray[np.int64]:
    """Average-linkage agglomerative clustering on cosine distance, stopped at ``threshold``; labels 0..k-1."""
    count = len(embeddings)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    normalised = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = normalised @ normalised.T
    members: dict[int, list[int]] = {index: [index] for index in range(count)}
    # Sum of similarities between clusters, so average linkage is sums / (|a| |b|).
    sums = similarity.astype(np.float64).copy()
    active = list(range(count))
    while len(active) > 1:
        best, pair = -np.inf, (0, 0)
        for position, a in enumerate(active):
            for b in active[position + 1 :]:
                linkage = sums[a, b] / (len(members[a]) * len(members[b]))
                if linkage > best:
                    best, pair = linkage, (a, b)
        if 1.0 - best > threshold:
            break
        a, b = pair
        members[a].extend(members.pop(b))
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        active.remove(b)
    labels = np.zeros(count, dtype=np.int64)
    for label, root in enumerate(sorted(active, key=lambda root: min(members[root]))):
        labels[members[root]] = label
    return labels


def _fold_small_clusters(embeddings: F32, labels: npt.NDArray[np.int64], min_windows: int) -> npt.NDArray[np.int64]:
    while True:
        names, counts = np.unique(labels, return_counts=True)
        if len(names) <= 1 or counts.min() >= min_windows:
            break
        small = int(names[np.argmin(counts)])
        centroids = {int(n): embeddings[labels == n].mean(axis=0) for n in names}
        target = max(
            (n for n in centroids if n != small),
            key=lambda n: (
                float(np.dot(centroids[n], centroids[small]))
                / float(np.linalg.norm(centroids[n]) * np.linalg.norm(centroids[small]) + 1e-12)
            ),
        )
        labels = np.where(labels == small, target, labels)
    # Renumber by first appearance.
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in labels], dtype=np.int64)


@dataclass(frozen=True)
class Diarization:
    turns: list[SpeakerTurn]
    centroids: F32  # (speakers, 256), L2-normalised

    @property
    def speaker_count(self) -> int:
        return len(self.centroids)


def window_starts(regions: Sequence[SpeechRegion], duration: float) -> list[float]:
    """Start times of 1.6-s windows every 0.4 s covering the speech regions (a region shorter than a window gets
    one window centred on it)."""
    starts: list[float] = []
    for region in regions:
        if region.duration <= WINDOW_SEC:
            centre = (region.start + region.end) / 2
            starts.append(min(max(0.0, centre - WINDOW_SEC / 2), max(0.0, duration - WINDOW_SEC)))
            continue
        position = region.start
        while position + WINDOW_SEC <= region.end + 1e-9:
            starts.append(position)
            position += STEP_SEC
        if starts[-1] + WINDOW_SEC < region.end - 0.05:
            starts.append(region.end - WINDOW_SEC)
    return starts


def diarize(
    encoder: SpeakerEncoder,
    pcm: npt.NDArray[Any],
    regions: Sequence[SpeechRegion],
    *,
    threshold: float = DISTANCE_THRESHOLD,
) -> Diarization:
    """Speaker turns of 16 kHz mono ``pcm`` inside the speech ``regions``.

    Windows of 1.6 s every 0.4 s are embedded and clustered; each 0.2-s step of each region then takes the speaker
    whose centre the windows covering it resemble most (weighted towards the windows centred nearest the step), and
    adjacent steps of one speaker join.
    """
    waveform = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else np.asarray(pcm, np.float32)
    duration = len(waveform) / SAMPLE_RATE
    speech = [region for region in regions if region.duration > 0]
    if not speech:
        return Diarization(turns=[], centroids=np.zeros((0, 256), dtype=np.float32))
    waveform = normalise_volume(waveform)
    starts = window_starts(speech, duration)
    embeddings = encoder.embed_windows(waveform, [round(start * SAMPLE_RATE) for start in starts])
    labels = agglomerate(embeddings, threshold)
    total_speech = sum(region.duration for region in speech)
    min_windows = max(1, round(max(MIN_SPEAKER_SEC, MIN_SPEAKER_SHARE * total_speech) / STEP_SEC))
    labels = _fold_small_clusters(embeddings, labels, min_windows if len(starts) > min_windows else 1)
    speakers = int(labels.max()) + 1
    centroids = np.stack([embeddings[labels == s].mean(axis=0) for s in range(speakers)])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)

    window_array = np.array(starts)
    centres = window_array + WINDOW_SEC / 2
    turns: list[SpeakerTurn] = []
    for region in speech:
        edges = [*np.arange(region.start, region.end, ASSIGN_STEP_SEC).tolist(), region.end]
        for left, right in itertools.pairwise(edges):
            if right - left <= 1e-6:
                continue
            middle = (left + right) / 2
            covering = np.flatnonzero((window_array <= middle) & (window_array + WINDOW_SEC >= middle))
            if not len(covering):
                covering = np.array([int(np.argmin(np.abs(centres - middle)))])
            # Each covering window votes with its similarity to every speaker's centre, weighted by how close its
            # centre is to this step (a triangle 1 s wide each side), so turns change where the voice changes.
            weights = np.maximum(1.0 - np.abs(centres[covering] - middle) / _ASSIGN_WIDTH_SEC, 0.05)
            speaker = int(np.argmax((centroids @ embeddings[covering].T) @ weights))
            if turns and turns[-1].speaker == speaker and abs(turns[-1].end - left) < 1e-6:
                turns[-1] = SpeakerTurn(turns[-1].start, right, speaker)
            else:
                turns.append(SpeakerTurn(left, right, speaker))
    rounded = [SpeakerTurn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns]
    return Diarization(turns=rounded, centroids=centroids.astype(np.float32))


def speaker_labels(count: int) -> list[str]:
    """``A``, ``B``, ... ``Z``, ``AA``, ``AB``, ..."""
    letters = string.ascii_uppercase
    labels = []
    for index in range(count):
        label = ""
        number = index
        while True:
            label = letters[number % 26] + label
            number = number // 26 - 1
            if number < 0:
                break
        labels.append(label)
    return labels
