/*
 * Earshot's compiled frame walkers: the hot loops of the FLAC, Matroska/Opus, MPEG audio, Ogg and ADTS/AC-3 walks
 * and of the FLV tag and AVI chunk chains and the ASF data packets, with exactly the semantics of the Python walks they
 * stand in for (flac.py, matroska.py, mpeg_audio.py, ogg.py, elementary.py, mpeg_streams.py, flv.py, avi.py, asf.py),
 * which stay the reference:
 * tests/integration/test_frame_walks.py, test_compiled_walkers.py and test_foreign_containers.py compare them on
 * damaged and mutated files.
 *
 * Plain C99, no Python headers and no libc calls, loaded with ctypes (compiled.py): one shared library serves every
 * Python version, and it needs no glibc symbol newer than the oldest. The input is hostile: every read is checked
 * against the buffer's size before it is made, offsets are 64-bit signed, and nothing recurses.
 */
#include <stdint.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define EXPORT __attribute__((visibility("default")))

/* The MPEG audio and ADTS/AC-3 walks read each frame's header where the previous one says: a chain of dependent
 * loads, each a cache miss. Fetching this far ahead keeps the memory (and page walks) busy meanwhile: 51,680 ADTS
 * frames (10 MiB) took 5-6 ms of CPU without, 2.6-2.8 ms with it (1 KiB; 512 B and 2-8 KiB were no better). */
#define ES_PREFETCH 1024

/* Bumped whenever a function's signature or meaning changes: compiled.py refuses a library of another version. */
#define EARSHOT_WALKERS_ABI 10

#ifndef EARSHOT_WALKERS_SOURCE_SHA256
#define EARSHOT_WALKERS_SOURCE_SHA256 ""
#endif

EXPORT int64_t earshot_walkers_abi(void) { return EARSHOT_WALKERS_ABI; }

/* The SHA-256 of this file as built (compiled.py passes it): a library built from another source is not loaded. */
EXPORT const char *earshot_walkers_source(void) { return EARSHOT_WALKERS_SOURCE_SHA256; }

/* ---- FLAC --------------------------------------------------------------------------------------------------- */

/* CRC-8 (polynomial 0x07) of the frame header, as flac.py's _crc8_table. */
static const uint8_t CRC8[256] = {
    0x00, 0x07, 0x0E, 0x09, 0x1C, 0x1B, 0x12, 0x15, 0x38, 0x3F, 0x36, 0x31, 0x24, 0x23, 0x2A, 0x2D,
    0x70, 0x77, 0x7E, 0x79, 0x6C, 0x6B, 0x62, 0x65, 0x48, 0x4F, 0x46, 0x41, 0x54, 0x53, 0x5A, 0x5D,
    0xE0, 0xE7, 0xEE, 0xE9, 0xFC, 0xFB, 0xF2, 0xF5, 0xD8, 0xDF, 0xD6, 0xD1, 0xC4, 0xC3, 0xCA, 0xCD,
    0x90, 0x97, 0x9E, 0x99, 0x8C, 0x8B, 0x82, 0x85, 0xA8, 0xAF, 0xA6, 0xA1, 0xB4, 0xB3, 0xBA, 0xBD,
    0xC7, 0xC0, 0xC9, 0xCE, 0xDB, 0xDC, 0xD5, 0xD2, 0xFF, 0xF8, 0xF1, 0xF6, 0xE3, 0xE4, 0xED, 0xEA,
    0xB7, 0xB0, 0xB9, 0xBE, 0xAB, 0xAC, 0xA5, 0xA2, 0x8F, 0x88, 0x81, 0x86, 0x93, 0x94, 0x9D, 0x9A,
    0x27, 0x20, 0x29, 0x2E, 0x3B, 0x3C, 0x35, 0x32, 0x1F, 0x18, 0x11, 0x16, 0x03, 0x04, 0x0D, 0x0A,
    0x57, 0x50, 0x59, 0x5E, 0x4B, 0x4C, 0x45, 0x42, 0x6F, 0x68, 0x61, 0x66, 0x73, 0x74, 0x7D, 0x7A,
    0x89, 0x8E, 0x87, 0x80, 0x95, 0x92, 0x9B, 0x9C, 0xB1, 0xB6, 0xBF, 0xB8, 0xAD, 0xAA, 0xA3, 0xA4,
    0xF9, 0xFE, 0xF7, 0xF0, 0xE5, 0xE2, 0xEB, 0xEC, 0xC1, 0xC6, 0xCF, 0xC8, 0xDD, 0xDA, 0xD3, 0xD4,
    0x69, 0x6E, 0x67, 0x60, 0x75, 0x72, 0x7B, 0x7C, 0x51, 0x56, 0x5F, 0x58, 0x4D, 0x4A, 0x43, 0x44,
    0x19, 0x1E, 0x17, 0x10, 0x05, 0x02, 0x0B, 0x0C, 0x21, 0x26, 0x2F, 0x28, 0x3D, 0x3A, 0x33, 0x34,
    0x4E, 0x49, 0x40, 0x47, 0x52, 0x55, 0x5C, 0x5B, 0x76, 0x71, 0x78, 0x7F, 0x6A, 0x6D, 0x64, 0x63,
    0x3E, 0x39, 0x30, 0x37, 0x22, 0x25, 0x2C, 0x2B, 0x06, 0x01, 0x08, 0x0F, 0x1A, 0x1D, 0x14, 0x13,
    0xAE, 0xA9, 0xA0, 0xA7, 0xB2, 0xB5, 0xBC, 0xBB, 0x96, 0x91, 0x98, 0x9F, 0x8A, 0x8D, 0x84, 0x83,
    0xDE, 0xD9, 0xD0, 0xD7, 0xC2, 0xC5, 0xCC, 0xCB, 0xE6, 0xE1, 0xE8, 0xEF, 0xFA, 0xFD, 0xF4, 0xF3,
};

/*
 * The block size of the frame header at p (its two sync bytes already matched) if it is well formed, CRC-8-valid
 * and of the stream (rate code, channel count, depth code; any stream when `rate` < 0); 0 otherwise. flac.py's
 * _parse_frame and same-stream test. Channel codes 8-10 are stereo coded as left/side, right/side, mid/side:
 * encoders pick one frame by frame.
 */
static int64_t flac_header(const uint8_t *b, int64_t size, int64_t p, int rate, int channels, int depth) {
    if (p + 6 > size) return 0;
    const int sizes = b[p + 2], layout = b[p + 3];
    const int block_code = sizes >> 4, rate_code = sizes & 0x0F;
    const int channels_code = layout >> 4, depth_code = (layout >> 1) & 0x07;
    if (block_code == 0 || rate_code == 15 || channels_code > 10 || depth_code == 3 || (layout & 1)) return 0;
    const int channel_count = channels_code < 8 ? channels_code + 1 : 2;
    if (rate >= 0 && (rate_code != rate || channel_count != channels || depth_code != depth)) return 0;
    /* The frame or sample number, UTF-8-like: a lead byte and `extra` continuation bytes. */
    const int lead = b[p + 4];
    int extra = 0;
    if (lead >= 0xFE) {
        extra = 6;
    } else if (lead >= 0x80) {
        int mask = 0x40;
        while (lead & mask) {
            extra++;
            mask >>= 1;
        }
        if (extra == 0 || extra > 5) return 0;
    }
    if (p + 5 + extra > size) return 0;
    for (int index = 1; index <= extra; index++) {
        if ((b[p + 4 + index] & 0xC0) != 0x80) return 0;
    }
    int64_t position = p + 5 + extra;
    int64_t block_size = 0;
    if (block_code == 1) {
        block_size = 192;
    } else if (block_code <= 5) {
        block_size = (int64_t)576 << (block_code - 2);
    } else if (block_code == 6) {
        if (position + 1 > size) return 0;
        block_size = (int64_t)b[position] + 1;
        position += 1;
    } else if (block_code == 7) {
        if (position + 2 > size) return 0;
        block_size = ((int64_t)b[position] << 8 | b[position + 1]) + 1;
        position += 2;
    } else {
        block_size = (int64_t)256 << (block_code - 8);
    }
    position += rate_code == 12 ? 1 : (rate_code == 13 || rate_code == 14) ? 2 : 0;
    if (position >= size) return 0; /* the CRC-8 byte itself must be there */
    uint8_t crc = 0;
    for (int64_t at = p; at < position; at++) crc = CRC8[crc ^ b[at]];
    return crc == b[position] ? block_size : 0;
}

/*
 * Every `0xFF second` byte pair after offset `after` that starts a CRC-8-valid frame header of the stream: their
 * block sizes are added into *samples. Returns how many pairs were not such a header (strays), or -1 as soon as
 * there are more than max_strays of them (the file is stuffed with sync patterns: flac.py leaves it to ffprobe).
 */
EXPORT int64_t earshot_flac_frames(const uint8_t *b, int64_t size, int64_t after, int second, int rate, int channels,
                                   int depth, int64_t max_strays, int64_t *samples) {
    int64_t total = 0, strays = 0;
    int64_t p = after < 0 ? 0 : after + 1;
#define FLAC_CANDIDATE(at)                                                     \
    do {                                                                       \
        const int64_t found = flac_header(b, size, (at), rate, channels, depth); \
        if (found) {                                                           \
            total += found;                                                    \
        } else if (++strays > max_strays) {                                    \
            *samples = total;                                                  \
            return -1;                                                         \
        }                                                                      \
    } while (0)
#ifdef __SSE2__
    /* 16 positions at a time: a lead byte 0xFF here and `second` in the next byte (both loads inside the buffer). */
    const __m128i lead_byte = _mm_set1_epi8((char)0xFF), second_byte = _mm_set1_epi8((char)second);
    for (; p + 17 <= size; p += 16) {
        const __m128i here = _mm_loadu_si128((const __m128i *)(b + p));
        const __m128i next = _mm_loadu_si128((const __m128i *)(b + p + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(here, lead_byte), _mm_cmpeq_epi8(next, second_byte)));
        while (mask) {
            FLAC_CANDIDATE(p + __builtin_ctz(mask));
            mask &= mask - 1;
        }
    }
#endif
    for (; p + 2 <= size; p++) {
        if (b[p] == 0xFF && b[p + 1] == second) FLAC_CANDIDATE(p);
    }
#undef FLAC_CANDIDATE
    *samples = total;
    return strays;
}

/*
 * flac.py's frame_block_sizes: for each of `count` offsets (where a container says a FLAC frame starts: CAF packets,
 * MP4 samples), the block size of a well-formed, CRC-8-valid frame header there, whatever its stream; 0 where there
 * is none (or the offset is outside the buffer).
 */
EXPORT void earshot_flac_block_sizes(const uint8_t *b, int64_t size, const int64_t *offsets, int64_t count,
                                     int64_t *out) {
    for (int64_t index = 0; index < count; index++) {
        const int64_t at = offsets[index];
        out[index] = at < 0 ? 0 : flac_header(b, size, at, -1, 0, 0);
    }
}

/* ---- Matroska / WebM with Opus ------------------------------------------------------------------------------ */

/* Samples at 48 kHz of one frame for each of the 32 Opus TOC configurations (RFC 6716, 3.1). */
static const int64_t OPUS_FRAME[32] = {
    480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 480, 960,
    120, 240, 480,  960,  120, 240, 480,  960,  120, 240, 480,  960,  120, 240, 480, 960,
};

/* codecs.py's opus_packet_samples for one packet: its TOC byte and the next (0 where the packet has none). */
static int64_t opus_samples(int toc, int second) {
    const int64_t frame = OPUS_FRAME[toc >> 3];
    const int code = toc & 3;
    const int64_t samples = code == 0 ? frame : code == 3 ? frame * (second & 0x3F) : 2 * frame;
    return samples > 5760 ? 0 : samples; /* more than 120 ms: invalid, the decoder drops it */
}

#define MKV_CLUSTER 0x1F43B675
#define MKV_SIMPLE_BLOCK 0xA3
#define MKV_BLOCK_GROUP 0xA0
#define MKV_UNKNOWN (-1)

/* matroska.py's _TOP_LEVEL: the elements that end a cluster of unknown size. */
static int mkv_top_level(int64_t id) {
    return id == MKV_CLUSTER || id == 0x1C53BB6B || id == 0x1254C367 || id == 0x1941A469 || id == 0x1043A770 ||
           id == 0x114D9B74 || id == 0x1549A966 || id == 0x1654AE6B;
}

/* matroska.py's _element: the id, size (MKV_UNKNOWN) and body offset of the element at `position`; 0 if none. */
static int mkv_element(const uint8_t *b, int64_t size, int64_t position, int64_t *id, int64_t *length,
                       int64_t *body) {
    if (position < 0 || position >= size) return 0;
    int lead = b[position];
    const int width = (lead & 0x80) ? 1 : (lead & 0x40) ? 2 : (lead & 0x20) ? 3 : (lead & 0x10) ? 4 : 0;
    if (!width || position + width >= size) return 0;
    int64_t ident = 0;
    for (int index = 0; index < width; index++) ident = ident << 8 | b[position + index];
    position += width;
    lead = b[position];
    int bytes = 1, mask = 0x80;
    while (bytes <= 8 && !(lead & mask)) {
        bytes++;
        mask >>= 1;
    }
    if (bytes > 8 || position + bytes > size) return 0;
    int64_t value = lead & (mask - 1);
    int unknown = value == mask - 1;
    for (int index = 1; index < bytes; index++) {
        value = value << 8 | b[position + index];
        unknown = unknown && b[position + index] == 0xFF;
    }
    *id = ident;
    *length = unknown ? MKV_UNKNOWN : value; /* at most 2^56 - 1: offsets plus sizes stay far from overflow */
    *body = position + bytes;
    return 1;
}

/*
 * codecs.alac_frame_samples for the ALAC frame at [frame, end): the samples it decodes to, from its first 8 bytes
 * (0 past `end`) with the stream's `frame_length`. [element:3][instance:4][unused:12][has_size:1][shift:2]
 * [verbatim:1][samples:32 if has_size]; a stated count of 0 or above the frame length, or an element other than a
 * channel element (SCE 0, CPE 1, LFE 3), makes nothing.
 */
static int64_t alac_samples(const uint8_t *b, int64_t frame, int64_t end, int64_t frame_length) {
    uint64_t bits = 0;
    for (int at = 0; at < 8; at++) bits = bits << 8 | (frame + at < end ? b[frame + at] : 0);
    const uint64_t element = bits >> 61;
    const int64_t samples = (bits >> 44) & 1 ? (int64_t)((bits >> 9) & 0xFFFFFFFFu) : frame_length;
    if (samples <= 0 || samples > frame_length || !(element == 0 || element == 1 || element == 3)) return 0;
    return samples;
}

/*
 * The fast-form SimpleBlock at `position` (a 1- or 2-byte size, the track whose number is the byte `track_byte`,
 * unlaced) as matroska_length's fast path reads it: its end, and in *samples its Opus samples (`alac_frame_length`
 * 0) or its ALAC samples (the stream's frame length); 0 if it is not one.
 */
static int64_t mkv_fast_block(const uint8_t *b, int64_t size, int64_t position, int track_byte,
                              int64_t alac_frame_length, int64_t *samples) {
    if (position < 0 || position + 3 >= size || b[position] != MKV_SIMPLE_BLOCK) return 0;
    const int lead = b[position + 1];
    int64_t body, end;
    if ((lead & 0x80) && lead != 0xFF) { /* 0xFF: unknown size */
        body = position + 2;
        end = body + (lead & 0x7F);
    } else if (lead >= 0x40 && lead < 0x80 && !(lead == 0x7F && b[position + 2] == 0xFF)) {
        body = position + 3;
        end = body + ((int64_t)(lead & 0x3F) << 8 | b[position + 2]);
    } else {
        return 0;
    }
    /* end - body > 4: the track byte, timecode (2), flags and the TOC byte are all before end <= size. */
    if (end > size || end - body <= 4 || b[body] != track_byte || (b[body + 3] & 0x06)) return 0;
    *samples = alac_frame_length ? alac_samples(b, body + 4, end, alac_frame_length)
                                 : opus_samples(b[body + 4], end - body > 5 ? b[body + 5] : 0);
    return end;
}

/*
 * A SimpleBlock of the track whose number is the byte `track_byte`, with the body [body, end) (inside the buffer), in
 * any other form than the fast one: matroska_length's general block path. Unlaced, its frame's samples; laced
 * (Xiph, EBML or fixed lacing, as muxers such as mkvmerge write Opus), every frame's, found as _laced_frames finds
 * them. *samples gets the sum, *last the last frame's. 0 (nothing taken) for a block the Python walk must see: one
 * shorter than its header, or whose lace does not add up (matroska_length then leaves the file to ffprobe).
 */
static int mkv_other_block(const uint8_t *b, int64_t body, int64_t end, int track_byte, int64_t *samples,
                           int64_t *last) {
    if (body >= end || b[body] != track_byte) return 0;
    const int64_t frame = body + 4;
    if (frame > end) return 0;
    const int lacing = b[frame - 1] & 0x06;
    if (!lacing) { /* the TOC byte and the next, 0 past the block's end (as the Python pads them) */
        *samples = *last = opus_samples(frame < end ? b[frame] : 0, frame + 1 < end ? b[frame + 1] : 0);
        return 1;
    }
    if (frame >= end) return 0;
    const int count = b[frame] + 1;
    const int64_t room = end - frame; /* no frame size can exceed it in a lace that adds up */
    int64_t sizes[256], total = 0, position = frame + 1;
    if (lacing == 0x02) { /* Xiph: each size a run of 255s and the byte that ends it */
        for (int index = 0; index < count - 1; index++) {
            int64_t size = 0;
            for (;;) {
                if (position >= end) return 0;
                const int byte = b[position++];
                size += byte;
                if (byte != 0xFF) break;
            }
            sizes[index] = size;
            total += size;
        }
    } else if (lacing == 0x06) { /* EBML: the first size unsigned, each next a signed difference from the last */
        for (int index = 0; index < count - 1; index++) {
            if (position >= end) return 0;
            const int lead = b[position];
            int width = 1, mask = 0x80;
            while (width <= 8 && !(lead & mask)) {
                width++;
                mask >>= 1;
            }
            if (width > 8 || position + width > end) return 0;
            int64_t value = lead & (mask - 1);
            for (int at = 1; at < width; at++) value = value << 8 | b[position + at];
            position += width;
            const int64_t size =
                index == 0 ? value : sizes[index - 1] + value - (((int64_t)1 << (7 * width - 1)) - 1);
            if (size <= 0 || size > room) return 0;
            sizes[index] = size;
            total += size;
        }
    } else { /* fixed: the rest split into `count` equal frames */
        if ((end - position) % count) return 0;
        for (int index = 0; index < count - 1; index++) sizes[index] = (end - position) / count;
        total = (end - position) / count * (count - 1);
    }
    const int64_t rest = end - position - total;
    if (rest <= 0) return 0;
    for (int index = 0; index < count - 1; index++) {
        if (sizes[index] <= 0) return 0;
    }
    int64_t sum = 0, frame_samples = 0;
    for (int index = 0; index < count; index++) {
        /* position < end: every size is positive and they add up to the block's bytes */
        frame_samples = opus_samples(b[position], position + 1 < end ? b[position + 1] : 0);
        sum += frame_samples;
        position += index < count - 1 ? sizes[index] : rest;
    }
    *samples = sum;
    *last = frame_samples;
    return 1;
}

/*
 * matroska_length's walk inside a cluster, from `position`, and on into the clusters that follow it: the Opus
 * SimpleBlocks of the track (fast-form, other forms, laced) are counted (out[0] blocks, out[1] their samples, out[2]
 * the last one's), or with `alac_frame_length` > 0 its fast-form ALAC SimpleBlocks; other elements of a known
 * size that fit in the file are stepped over, exactly as the Python walk does. It stops at anything else, for the
 * Python walk to take:
 *   out[5] = 0: the element at the returned position, inside the cluster now described by out[3] (its end) and
 *               out[4] (1 when its size is unknown): another track's SimpleBlock, one whose lace does not add
 *               up, a BlockGroup, an element cut short, one of unknown size or that does not parse;
 *   out[5] = 1: the cluster is done (that cluster's out[3], out[4]); the segment's walk goes on at the returned
 *               position, at an element that is not a cluster (or the segment's end).
 */
EXPORT int64_t earshot_matroska_blocks(const uint8_t *b, int64_t size, int64_t position, int64_t cluster_end,
                                       int unknown, int64_t segment_end, int track_byte,
                                       int64_t alac_frame_length, int64_t *out) {
    int64_t blocks = 0, samples = 0, last = 0, stop = 0;
    for (;;) {
        while (position < cluster_end) {
            if (position < size - ES_PREFETCH) __builtin_prefetch(b + position + ES_PREFETCH); /* as the ADTS walk */
            int64_t block_samples = 0;
            const int64_t end = mkv_fast_block(b, size, position, track_byte, alac_frame_length, &block_samples);
            if (end) {
                blocks++;
                samples += block_samples;
                last = block_samples;
                position = end;
                continue;
            }
            int64_t id, length, body;
            if (!mkv_element(b, size, position, &id, &length, &body)) goto element;
            if (length == MKV_UNKNOWN) {
                if (mkv_top_level(id)) goto cluster_done;
                goto element;
            }
            if (mkv_top_level(id) && unknown) goto cluster_done;
            if (body + length > size || id == MKV_BLOCK_GROUP) goto element;
            if (id == MKV_SIMPLE_BLOCK) {
                if (alac_frame_length) goto element; /* ALAC in another form: the Python walk's */
                int64_t block_last = 0;
                if (!mkv_other_block(b, body, body + length, track_byte, &block_samples, &block_last)) goto element;
                blocks++;
                samples += block_samples;
                last = block_last;
            }
            position = body + length;
        }
    cluster_done:
        if (!unknown && position < cluster_end) position = cluster_end;
        /* The segment's walk, as far as the next element is a cluster. */
        int64_t id, length, body;
        if (position >= segment_end || !mkv_element(b, size, position, &id, &length, &body) || id != MKV_CLUSTER) {
            stop = 1;
            break;
        }
        unknown = length == MKV_UNKNOWN;
        cluster_end = unknown || body + length > segment_end ? segment_end : body + length;
        position = body;
    }
element:
    out[0] = blocks;
    out[1] = samples;
    out[2] = last;
    out[3] = cluster_end;
    out[4] = unknown;
    out[5] = stop;
    return position;
}

/* ---- MPEG audio --------------------------------------------------------------------------------------------- */

/*
 * mpeg_audio.py's sequential walk between resyncs: from `position`, frame after frame of the stream whose frame
 * size, by header bytes 1-2, is sizes[65536] (0: not a frame of the stream, or free format). *frames gets how many;
 * a last frame cut short counts (decoders decode it whole) and the walk then stops at `size`. Returns where the
 * walk stopped: past size - 4 (the end), or where the sync was lost.
 */
EXPORT int64_t earshot_mpeg_frames(const uint8_t *b, int64_t size, int64_t position, const int32_t *sizes,
                                   int64_t *frames) {
    int64_t count = 0;
    if (position < 0) position = 0;
    while (position <= size - 4) {
        if (position < size - ES_PREFETCH) __builtin_prefetch(b + position + ES_PREFETCH); /* as the ADTS walk */
        if (b[position] != 0xFF) break;
        const int64_t length = sizes[b[position + 1] << 8 | b[position + 2]];
        if (length <= 0) break;
        count++;
        if (position + length > size) {
            position = size;
            break;
        }
        position += length;
    }
    *frames = count;
    return position;
}

/*
 * chains.mp3_payload_samples' shortcut test over `count` records (FLV tag or AVI chunk payloads: offsets `starts`,
 * `lengths` bytes, in order): 1 when each has 4 bytes inside the buffer and holds 4 or more, every one but the last
 * is exactly one whole frame of the stream whose frame-size table is `sizes` (sync byte 0xFF, sizes[header bytes 1-2]
 * its length) and the last starts a frame of it; 0 otherwise (the caller joins the payloads and walks them).
 */
EXPORT int64_t earshot_mpeg_records(const uint8_t *b, int64_t size, int64_t count, const int64_t *starts,
                                    const int64_t *lengths, const int32_t *sizes) {
    if (count < 1) return 0;
    for (int64_t index = 0; index < count; index++) {
        if (index + 16 < count && starts[index + 16] >= 0 && starts[index + 16] < size) {
            __builtin_prefetch(b + starts[index + 16]);
        }
        const int64_t start = starts[index], length = lengths[index];
        if (start < 0 || start > size - 4 || length < 4 || b[start] != 0xFF) return 0;
        const int64_t frame = sizes[b[start + 1] << 8 | b[start + 2]];
        if (index < count - 1 ? frame != length : frame <= 0) return 0;
    }
    return 1;
}

/* ---- ADTS AAC, AC-3, E-AC-3 -------------------------------------------------------------------------------- */

/* AC-3 bit rates (kbit/s) by frame size code / 2 (elementary.py's _AC3_BITRATES). */
static const int64_t AC3_BITRATES[19] = {32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448,
                                         512, 576, 640};
static const int64_t EAC3_BLOCKS[4] = {1, 2, 3, 6};

/* elementary.py's flags: refuse a counted ADTS frame of several raw data blocks; follow ffmpeg's raw ADTS demuxer. */
#define ES_REFUSE_SEVERAL 1
#define ES_ADTS_DEMUXER 2
/* A frame reached after a resync counts only when this many frames of the stream chain from it (or reach the end). */
#define ES_RESYNC_CHAIN 3
/* ffmpeg's raw ADTS demuxer: a position without a sync is read as 7 + 3 bytes (an ID3v2 test) before its resync
 * scans, and the scan gives up after probesize (5,000,000) bytes. */
#define ES_ADTS_SKIP 10
#define ES_ADTS_WINDOW 5000000

typedef struct {
    const uint8_t *b;
    int64_t size;
    int codec; /* 0 ADTS AAC, 1 AC-3, 2 E-AC-3 */
    int flags;
    const uint8_t *mask, *fixed;
} es_stream;

/* The header bytes every check reads (ADTS' fixed header; ffmpeg's AC3_HEADER_SIZE). */
#define ES_HEADER 7

/* The size of the AC-3 frame whose header is h (0: a size or rate code the decoder refuses). */
static int64_t ac3_length(const uint8_t *h) {
    const int code = h[4] & 0x3F, fscod = h[4] >> 6;
    if (code >= 38 || fscod >= 3) return 0;
    const int64_t bitrate = AC3_BITRATES[code >> 1];
    const int64_t words = fscod == 0 ? 2 * bitrate : fscod == 2 ? 3 * bitrate : bitrate * 320 / 147 + (code & 1);
    return 2 * words;
}

/* The size of the E-AC-3 frame whose header is h (0: a reserved frame type or rate, or under a header's size). */
static int64_t eac3_length(const uint8_t *h) {
    const int64_t length = ((int64_t)(h[2] & 0x07) << 8 | h[3]) * 2 + 2;
    return h[2] >> 6 == 3 || length < ES_HEADER || (h[4] >> 4) == 0x0F ? 0 : length;
}

/* A header of the stream at p: its first 6 bytes agree with `fixed` under `mask` (bytes 6-7 are never masked). */
static int es_header(const es_stream *s, int64_t p) {
    if (p < 0 || p > s->size - ES_HEADER) return 0;
    for (int index = 0; index < 6; index++) {
        if ((s->b[p + index] & s->mask[index]) != s->fixed[index]) return 0;
    }
    return 1;
}

/*
 * The frame of the stream at p: its size (0: none, or a size the decoder refuses), samples and whether it is an ADTS
 * frame of several raw data blocks. elementary.py's _frames.
 */
static int64_t es_frame(const es_stream *s, int64_t p, int64_t *samples, int *several) {
    if (!es_header(s, p)) return 0;
    const uint8_t *h = s->b + p;
    *several = 0;
    if (s->codec == 0) {
        const int64_t length = (int64_t)(h[3] & 0x03) << 11 | (int64_t)h[4] << 3 | h[5] >> 5;
        if (length < ((h[1] & 0x01) ? 7 : 9)) return 0; /* the header, and its CRC where one is signalled */
        *several = (h[6] & 0x03) != 0;
        *samples = 1024;
        return length;
    }
    if (s->codec == 1) {
        *samples = 1536;
        return ac3_length(h);
    }
    const int stream_type = h[2] >> 6, substream = (h[2] >> 3) & 7;
    const int64_t length = eac3_length(h);
    if (!length) return 0;
    const int64_t blocks = h[4] >> 6 == 3 ? 6 : EAC3_BLOCKS[(h[4] >> 4) & 3];
    /* Only the independent substream 0 adds time; the others carry more channels of it. */
    *samples = stream_type != 1 && substream == 0 ? 256 * blocks : 0;
    return length;
}

/*
 * What ffmpeg takes at p as a frame of any stream (its demuxer's or parser's header check): its size; 0 when it takes
 * none there; -1 where ffmpeg stops (its raw ADTS demuxer: a sync whose size is under 7, or fewer than 7 bytes left).
 */
static int64_t es_taken(const es_stream *s, int64_t p) {
    const uint8_t *b = s->b;
    if (p > s->size - ES_HEADER) return (s->flags & ES_ADTS_DEMUXER) ? -1 : 0;
    if (s->codec == 0) {
        if (b[p] != 0xFF || (b[p + 1] & 0xF0) != 0xF0) return 0;
        const int64_t length = (int64_t)(b[p + 3] & 0x03) << 11 | (int64_t)b[p + 4] << 3 | b[p + 5] >> 5;
        if (s->flags & ES_ADTS_DEMUXER) return length < 7 ? -1 : length;
        return length < 7 || ((b[p + 2] >> 2) & 0x0F) >= 13 ? 0 : length; /* the parser's check */
    }
    if (b[p] != 0x0B || b[p + 1] != 0x77) return 0;
    const int bsid = b[p + 5] >> 3;
    if (bsid > 16) return 0;
    return bsid <= 10 ? ac3_length(b + p) : eac3_length(b + p);
}

/* Whether ES_RESYNC_CHAIN frames of the stream chain from p, each whole (reaching the end early is enough). */
static int es_chained(const es_stream *s, int64_t p) {
    for (int index = 0; index < ES_RESYNC_CHAIN; index++) {
        if (p == s->size) return 1;
        int64_t samples = 0;
        int several = 0;
        const int64_t length = es_frame(s, p, &samples, &several);
        if (length <= 0 || length > s->size - p) return 0;
        p += length;
    }
    return 1;
}

/* Where ffmpeg looks for its next frame after p, where it found none (-1: it does not find one). */
static int64_t es_resync(const es_stream *s, int64_t p) {
    const uint8_t *b = s->b;
    if (s->flags & ES_ADTS_DEMUXER) { /* adts_aac_resync: the next 0xFFF sync, after 10 bytes, within its window */
        const int64_t from = p + ES_ADTS_SKIP;
        const int64_t last = s->size - 2 < from + ES_ADTS_WINDOW - 2 ? s->size - 2 : from + ES_ADTS_WINDOW - 2;
        for (int64_t q = from; q <= last; q++) {
            if (b[q] == 0xFF && (b[q + 1] & 0xF0) == 0xF0) return q;
        }
        return -1;
    }
    for (int64_t q = p + 1; q <= s->size - ES_HEADER; q++) { /* the parser: byte by byte */
        if (b[q] == (s->codec == 0 ? 0xFF : 0x0B) && es_taken(s, q) > 0) return q;
    }
    return -1;
}

/*
 * The samples of an ADTS AAC, AC-3 or E-AC-3 elementary stream from `position` (its first frame), frame by frame as
 * ffmpeg reads it, counting only what decodes (elementary.py's _walk is the reference):
 *   - a frame of the stream (its first 6 header bytes agree with `fixed` under `mask`, a size the decoder takes)
 *     counts when it is whole and ends at the file's end or at another header of the stream: a frame followed by
 *     anything else is the one junk was inserted into or cut from (ffmpeg's decoder refuses it), or the last before
 *     trailing junk (ffmpeg's AC-3 parser glues the junk to it);
 *   - anything else ffmpeg takes as a frame (a false sync, another stream's header) is stepped over by its stated
 *     size, as ffmpeg's demuxer and parser do (what they swallow is not counted either); where there is none, the
 *     walk resyncs where ffmpeg does (the parser byte by byte; the raw ADTS demuxer 10 bytes on, within 5 MB);
 *   - after such a break a frame counts only when ES_RESYNC_CHAIN frames of the stream chain from it (a false sync
 *     in junk does not), and the walk ends where ffmpeg stops (the raw ADTS demuxer at a sync of a size under 7).
 * `flags`: ES_REFUSE_SEVERAL (return -1 at a counted ADTS frame of several raw data blocks: elementary.py leaves
 * those to ffprobe), ES_ADTS_DEMUXER (raw .aac files; otherwise the parser's rules, as for ADTS in MPEG-TS/PS).
 */
EXPORT int64_t earshot_elementary_frames(const uint8_t *b, int64_t size, int64_t position, int codec, int flags,
                                         const uint8_t *mask, const uint8_t *fixed) {
    const es_stream s = {b, size, codec, flags, mask, fixed};
    int64_t total = 0;
    int linked = 1; /* the first frame (identification found it chained) */
    if (position < 0) return 0;
    while (position < size) {
        if (position < size - ES_PREFETCH) __builtin_prefetch(b + position + ES_PREFETCH);
        int64_t samples = 0;
        int several = 0;
        const int64_t length = es_frame(&s, position, &samples, &several);
        if (length > 0) {
            if (length > size - position) break; /* cut short: it does not decode, and nothing follows */
            const int64_t end = position + length;
            int counted = end == size || es_header(&s, end);
            if (counted && !linked) counted = es_chained(&s, position);
            if (counted) {
                if (several && (flags & ES_REFUSE_SEVERAL)) return -1;
                total += samples;
            }
            linked = counted;
            position = end;
            continue;
        }
        linked = 0;
        const int64_t taken = es_taken(&s, position);
        if (taken < 0) break;
        position = taken > 0 ? position + taken : es_resync(&s, position);
        if (position < 0) break;
    }
    return total;
}

/* ---- MPEG transport streams ---------------------------------------------------------------------------------- */

#define TS_PACKET 188
/* Packets fetched ahead of the one read (as ES_PREFETCH: the next pages are on their way meanwhile). */
#define TS_AHEAD 16

/*
 * The payload of the transport packet at `packet` as mpeg_streams._ts_rows reads it: where it starts (TS_PACKET: no
 * payload), *unit set when a PES starts there (its header skipped); -1 where _ts_rows refuses the stream (scrambled,
 * an adaptation field overrunning the packet, a PES header that does not parse or is split across packets).
 */
static int ts_payload(const uint8_t *packet, int *unit) {
    const int control = packet[3];
    if (control & 0xC0) return -1; /* scrambled */
    int start = 4;
    if (control & 0x20) start += 1 + packet[4];
    if (!(control & 0x10)) start = TS_PACKET; /* no payload */
    if (start > TS_PACKET) return -1;
    *unit = (packet[1] & 0x40) && start < TS_PACKET;
    if (*unit) {
        if (start + 9 > TS_PACKET) return -1;
        const uint8_t *pes = packet + start;
        if (pes[0] != 0 || pes[1] != 0 || pes[2] != 1 || pes[6] >> 6 != 2) return -1;
        start += 9 + pes[8];
        if (start > TS_PACKET) return -1;
    }
    return start;
}

static int ts_pid(const uint8_t *packet) { return (packet[1] & 0x1F) << 8 | packet[2]; }

/*
 * mpeg_streams._ts_rows and _joined: the payloads of `pid`'s packets among packets [first, count) (188 bytes each from
 * offset 0), from its first PES on, PES headers removed, copied to `out` (NULL: only counted). Returns their length,
 * or -1 where _ts_rows refuses the stream (ts_payload).
 */
EXPORT int64_t earshot_ts_payloads(const uint8_t *b, int64_t size, int64_t first, int64_t count, int pid,
                                   uint8_t *out) {
    int64_t length = 0;
    int started = 0;
    if (first < 0 || count < first || count > size / TS_PACKET) return -1;
    for (int64_t index = first; index < count; index++) {
        const uint8_t *packet = b + index * TS_PACKET;
        if (index + TS_AHEAD < count) __builtin_prefetch(packet + TS_AHEAD * TS_PACKET);
        if (ts_pid(packet) != pid) continue;
        int unit = 0;
        const int start = ts_payload(packet, &unit);
        if (start < 0) return -1;
        started = started || unit;
        if (!started) continue;
        if (out) {
            for (int at = start; at < TS_PACKET; at++) out[length + at - start] = packet[at];
        }
        length += TS_PACKET - start;
    }
    return length;
}

/*
 * mpeg_streams._ts_one_frame_per_pes without joining the stream: when every PES of `pid` but the last holds exactly
 * one whole frame of the stream (its first 4 bytes agree with `fixed` under `mask`, its size equal to the PES's
 * payload bytes) and the last PES starts with one, returns how many PES come before the last, and puts the last's
 * first packet in out[0] (the caller walks that PES alone) and the packets read in out[1]: all `count`, or those
 * before the first whose sync byte is not 0x47 (_ts_count decides whether the stream ends there). The size: ADTS (`kind` 0) its length field, at least the
 * header (and CRC); MPEG audio (`kind` 1) sizes[header bytes 1-2]. -1 otherwise (the caller joins the whole stream),
 * and where _ts_rows refuses the stream.
 */
EXPORT int64_t earshot_ts_pes_frames(const uint8_t *b, int64_t size, int64_t count, int pid, int kind, uint32_t mask,
                                     uint32_t fixed, const int32_t *sizes, int64_t *out) {
    int64_t units = 0, pes_bytes = 0, frame_bytes = 0, last_unit = -1, index = 0;
    if (count < 0 || count > size / TS_PACKET) return -1;
    for (; index < count; index++) {
        const uint8_t *packet = b + index * TS_PACKET;
        if (index + TS_AHEAD < count) __builtin_prefetch(packet + TS_AHEAD * TS_PACKET);
        if (packet[0] != 0x47) break; /* the packet sync is lost: the caller asks _ts_count what follows */
        if (ts_pid(packet) != pid) continue;
        int unit = 0;
        const int start = ts_payload(packet, &unit);
        if (start < 0) return -1;
        if (unit) {
            if (units && pes_bytes != frame_bytes) return -1; /* the PES before does not hold exactly one frame */
            if (TS_PACKET - start < 7) return -1;             /* a frame header split across packets */
            const uint8_t *h = packet + start;
            const uint32_t word = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
            if ((word & mask) != fixed) return -1;
            if (kind == 0) {
                frame_bytes = (int64_t)(h[3] & 0x03) << 11 | (int64_t)h[4] << 3 | h[5] >> 5;
                if (frame_bytes < ((h[1] & 0x01) ? 7 : 9)) return -1;
            } else {
                frame_bytes = sizes[h[1] << 8 | h[2]];
                if (frame_bytes <= 0) return -1;
            }
            units++;
            pes_bytes = 0;
            last_unit = index;
        }
        if (units) pes_bytes += TS_PACKET - start;
    }
    if (units < 2) return -1;
    out[0] = last_unit;
    out[1] = index;
    return units - 1;
}

/* ---- MPEG program streams ----------------------------------------------------------------------------------- */

/* mpeg_streams._pes_payload: where a program stream PES packet's payload starts (MPEG-2 or MPEG-1 header); -1 if its
 * header does not parse. [body, end) is inside the buffer. */
static int64_t ps_payload(const uint8_t *b, int64_t body, int64_t end) {
    if (body >= end) return -1;
    if (b[body] >> 6 == 2) { /* MPEG-2: flags, header length */
        if (body + 3 > end) return -1;
        const int64_t start = body + 3 + b[body + 2];
        return start <= end ? start : -1;
    }
    int64_t position = body;
    while (position < end && b[position] == 0xFF && position - body < 16) position++; /* stuffing */
    if (position < end && b[position] >> 6 == 1) position += 2;                      /* STD buffer */
    if (position >= end) return -1;
    const int lead = b[position] >> 4;
    if (lead == 2) {
        position += 5; /* PTS */
    } else if (lead == 3) {
        position += 10; /* PTS and DTS */
    } else if (b[position] == 0x0F) {
        position += 1;
    } else {
        return -1;
    }
    return position <= end ? position : -1;
}

/*
 * mpeg_ps_length's count where the program stream is plain, without joining its audio: _ps_elementary's walk over
 * packs and PES packets (one MPEG audio stream, any video, the skipped kinds), and the MPEG audio frame walk
 * (earshot_mpeg_frames, `sizes` its table) over the audio payloads as one stream, from its offset `start` in that
 * stream (where _find_stream put the first frame). Returns the frames, or -1 wherever the Python walks would do
 * anything else (junk between packets, another stream, a header that does not parse, the frame sync lost, a frame
 * header split by a truncated stream): the caller then joins the stream and walks it in Python.
 */
EXPORT int64_t earshot_ps_mpeg_frames(const uint8_t *b, int64_t size, int64_t start, const int32_t *sizes) {
    int64_t position = 0, es = 0, next = start, frames = 0, last = 0;
    int audio = -1, have = 0;
    uint8_t header[3] = {0, 0, 0};
    if (size < 4 || b[0] != 0 || b[1] != 0 || b[2] != 1 || b[3] != 0xBA || start < 0) return -1;
    while (position + 6 <= size) {
        if (position + 64 < size) __builtin_prefetch(b + position + 2048);
        if (b[position] != 0 || b[position + 1] != 0 || b[position + 2] != 1) return -1; /* junk: Python resyncs */
        const int id = b[position + 3];
        if (id == 0xBA) { /* pack header */
            const int mode = b[position + 4];
            if (mode >> 6 == 1) {
                if (position + 14 > size) break;
                position += 14 + (b[position + 13] & 0x07);
            } else if (mode >> 4 == 2) {
                position += 12;
            } else {
                return -1;
            }
            continue;
        }
        if (id == 0xB9) {
            position += 4;
            continue;
        }
        const int64_t length = (int64_t)b[position + 4] << 8 | b[position + 5];
        const int64_t body = position + 6, end = body + length < size ? body + length : size;
        position += 6 + length;
        if (id >= 0xC0 && id <= 0xDF) {
            if (audio < 0) audio = id;
            if (id != audio) return -1;
            const int64_t payload = ps_payload(b, body, end);
            if (payload < 0) return -1;
            /* The frame walk over this piece of the audio stream: es is the stream offset of b[at]. */
            for (int64_t at = payload; at < end;) {
                if (!have && es < next) { /* inside a frame's body */
                    const int64_t skip = next - es < end - at ? next - es : end - at;
                    at += skip;
                    es += skip;
                    continue;
                }
                if (!have) last = es;
                header[have++] = b[at++]; /* a header's bytes, possibly split across pieces */
                es++;
                if (have < 3) continue;
                have = 0;
                const int64_t frame = header[0] == 0xFF ? sizes[header[1] << 8 | header[2]] : 0;
                if (frame <= 0) return -1; /* the sync is lost: the Python walk resyncs */
                frames++;
                next = last + frame;
            }
        } else if (!(id >= 0xE0 && id <= 0xEF) && id != 0xBB && id != 0xBC && id != 0xBE && id != 0xBF) {
            return -1; /* private stream 1 and the rest: ffprobe's */
        }
    }
    /* The stream's end: the walk reads a header only where 4 bytes remain (a last frame cut short counts). */
    if (audio < 0 || have || (frames && last + 4 > es)) return -1;
    return frames;
}

/* ---- Ogg ---------------------------------------------------------------------------------------------------- */

/*
 * ogg.py's page walk and packet assembly for the first logical stream: the pages in file order (resyncing on
 * "OggS"), their lacing values, and every packet a segment under 255 completes, with its start offset, length
 * (from its first segment's offset to the end of its last one) and first two bytes (0 where it has none). Packets
 * are written while fewer than `capacity` have been (call once with 0 to count them). out[0] gets the last
 * complete page's granule position (-1: none), out[1] how many packets had ended by that page, out[2] where the
 * last complete page ends. Returns the number of packets, or -1 when there is no page of a first stream or another
 * stream begins (chained or multiplexed: ogg.py leaves those to the packet counter).
 */
EXPORT int64_t earshot_ogg_packets(const uint8_t *b, int64_t size, int64_t capacity, int64_t *starts,
                                   int64_t *lengths, uint8_t *first, uint8_t *second, int64_t *out) {
    int64_t position = 0, packets = 0, packets_ended = 0, last_granule = -1, granule_packets = 0;
    int64_t complete_end = 0, start = 0;
    int64_t serial = -1; /* none yet: serials are 32-bit */
    int open = 0;
    while (position + 27 <= size) {
        if (!(b[position] == 'O' && b[position + 1] == 'g' && b[position + 2] == 'g' && b[position + 3] == 'S')) {
            int64_t found = position + 1;
            while (found + 4 <= size &&
                   !(b[found] == 'O' && b[found + 1] == 'g' && b[found + 2] == 'g' && b[found + 3] == 'S')) {
                found++;
            }
            if (found + 4 > size) break;
            position = found;
            continue;
        }
        const int version = b[position + 4], flags = b[position + 5], count = b[position + 26];
        uint64_t granule_bits = 0;
        for (int index = 7; index >= 0; index--) granule_bits = granule_bits << 8 | b[position + 6 + index];
        const int64_t granule = (int64_t)granule_bits;
        const int64_t page_serial = (int64_t)b[position + 14] | (int64_t)b[position + 15] << 8 |
                                    (int64_t)b[position + 16] << 16 | (int64_t)b[position + 17] << 24;
        const int64_t table_end = position + 27 + count;
        if (version != 0 || table_end > size) break;
        int64_t body = 0;
        for (int64_t at = position + 27; at < table_end; at++) body += b[at];
        if (serial < 0) {
            serial = page_serial;
        } else if (page_serial != serial) {
            if (flags & 0x02) return -1; /* another stream begins */
            position = table_end + body;
            continue;
        }
        int64_t offset = table_end;
        for (int64_t at = position + 27; at < table_end; at++) {
            const int lacing = b[at];
            if (!open) {
                start = offset;
                open = 1;
            }
            if (lacing < 255) {
                if (packets < capacity) {
                    const int64_t length = offset + lacing - start;
                    starts[packets] = start;
                    lengths[packets] = length;
                    first[packets] = length > 0 && start < size ? b[start] : 0;
                    second[packets] = length > 1 && start + 1 < size ? b[start + 1] : 0;
                }
                packets++;
                packets_ended++;
                open = 0;
            }
            offset += lacing;
        }
        if (table_end + body <= size) {
            complete_end = table_end + body;
            if (granule != -1) {
                last_granule = granule;
                granule_packets = packets_ended;
            }
        }
        position = table_end + body;
    }
    if (serial < 0) return -1;
    out[0] = last_granule;
    out[1] = granule_packets;
    out[2] = complete_end;
    return packets;
}

/* ---- Record chains: FLV tags, AVI chunks -------------------------------------------------------------------- */

/*
 * A chain of records a few hundred bytes long reads a header or two in every few cache lines, each where the one
 * before says: one fetch ahead per record (ES_PREFETCH) left a 20-minute FLV's 51,683 tags at 4 ms (a memory latency
 * each). Fetching every line up to CHAIN_AHEAD bytes ahead streams the file as `cat` reads it: 0.4-0.9 ms. Records
 * further apart than CHAIN_STREAM (PCM chunks of 8 KiB) are not streamed: only the line ES_PREFETCH ahead is fetched.
 */
#define CHAIN_AHEAD 4096
#define CHAIN_STREAM 2048

static void chain_fetch(const uint8_t *b, int64_t size, int64_t position, int64_t stride, int64_t *frontier) {
    if (stride > CHAIN_STREAM) {
        if (position < size - ES_PREFETCH) __builtin_prefetch(b + position + ES_PREFETCH);
        return;
    }
    if (*frontier < position) *frontier = position & ~(int64_t)63;
    const int64_t until = position < size - CHAIN_AHEAD ? position + CHAIN_AHEAD : size;
    for (; *frontier < until; *frontier += 64) __builtin_prefetch(b + *frontier);
}

/* ---- FLV tags ----------------------------------------------------------------------------------------------- */

#define FLV_HEADER 11
#define FLV_TRAILER 4 /* PreviousTagSize */
/* ffmpeg's resync looks back over this many bytes: two consecutive tags that agree, together within it. */
#define FLV_RESYNC_BUFFER (1 << 20)

static int64_t be24(const uint8_t *p) { return (int64_t)p[0] << 16 | (int64_t)p[1] << 8 | p[2]; }
static int64_t be32(const uint8_t *p) { return (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3]; }

/*
 * flv.py's `advance` for the tag at `at` (its FLV_HEADER bytes inside the buffer): whether ffmpeg keeps it (its
 * trailing PreviousTagSize states its size, with or without the header, or 0 after a non-empty tag; or the file ends
 * in or after it: the demuxer stops there without checking), and in *following where the next tag starts.
 */
static int flv_agrees(const uint8_t *b, int64_t size, int64_t at, int64_t *following) {
    const int64_t length = be24(b + at + 1);
    const int64_t end = at + FLV_HEADER + length;
    *following = end + FLV_TRAILER;
    if (end > size - FLV_TRAILER) return 1;
    const int64_t excess = be32(b + end) - length;
    return excess == 11 || excess == 10 || (excess == 0 && length > 0);
}

/* flv.py's _resync (ffmpeg's): the first offset from `position` where two consecutive tags each agree exactly with
 * their trailing size, together within the look-back; -1 if there is none. */
static int64_t flv_resync(const uint8_t *b, int64_t size, int64_t position) {
    const int64_t last = size - (FLV_HEADER + FLV_TRAILER);
    for (int64_t at = position; at <= last; at++) {
        const int64_t first = be24(b + at + 1);
        const int64_t second_at = at + FLV_HEADER + first + FLV_TRAILER;
        if (second_at > last || be32(b + second_at - FLV_TRAILER) != first + FLV_HEADER) continue;
        const int64_t second = be24(b + second_at + 1);
        const int64_t end = second_at + FLV_HEADER + second;
        if (end + FLV_TRAILER > size || first + second + 2 * FLV_HEADER + 8 >= FLV_RESYNC_BUFFER) continue;
        if (be32(b + end) == second + FLV_HEADER) return at;
    }
    return -1;
}

/*
 * earshot_mpeg_records' test made record by record as a chain walk finds the records (FLV tag or AVI chunk
 * payloads), against `sizes`, the frame-size table of the stream the caller expects the first record to open: no
 * second pass over the records, and no arrays of them. The caller confirms that expectation with `first`.
 */
typedef struct {
    const int32_t *sizes; /* NULL: no test */
    int64_t first;        /* the first record's first 4 bytes, big-endian; -1: fewer than 4 in the buffer */
    int prefix;           /* every record before the latest is exactly one whole frame */
    int whole, starts;    /* the latest is one whole frame; it starts a frame (4 bytes in the buffer, 4 or more held) */
    int64_t last_start, last_length;
} mpeg_check;

static void mpeg_check_record(const uint8_t *b, int64_t size, mpeg_check *check, int64_t before, int64_t start,
                              int64_t length) {
    if (!check->sizes) return;
    const int inside = start >= 0 && start <= size - 4;
    int64_t frame = -1;
    if (inside && length >= 4 && b[start] == 0xFF) frame = check->sizes[b[start + 1] << 8 | b[start + 2]];
    if (before == 0) {
        check->first = inside ? be32(b + start) : -1;
    } else {
        check->prefix = check->prefix && check->whole;
    }
    check->whole = frame == length;
    check->starts = frame > 0;
    check->last_start = start;
    check->last_length = length;
}

/* out[0] the first record's 4 bytes (-1: none), out[1] 1 when the records are one frame each and the last starts
 * one (earshot_mpeg_records' answer), out[2] and out[3] the last record's offset and length. */
static void mpeg_check_out(const mpeg_check *check, int64_t count, int64_t *out) {
    out[0] = count ? check->first : -1;
    out[1] = count > 0 && check->prefix && check->starts;
    out[2] = check->last_start;
    out[3] = check->last_length;
}

/* What a walk of the tag chain keeps: every tag's offset, or (`audio`) what flv_length counts of the audio tags. */
typedef struct {
    int audio;
    int64_t capacity, count;
    int64_t *offsets, *lengths;
    int64_t codec, mixed, aac_frames;
    mpeg_check check;
} flv_kept;

#define FLV_AUDIO 8

/*
 * A tag ffmpeg keeps. Every tag: its offset. Audio: flv_length's records, the audio tags that lie wholly in the file
 * with a payload of 2 bytes or more: their payload after the flags byte (offset and length), the first one's codec
 * id, whether another follows, and how many are AAC raw frames (packet type 1 and at least one byte of frame).
 */
static void flv_keep(const uint8_t *b, int64_t size, int64_t tag, flv_kept *kept) {
    if (kept->audio) {
        if (b[tag] != FLV_AUDIO) return;
        const int64_t length = be24(b + tag + 1);
        if (length < 2 || tag + FLV_HEADER + length > size) return;
        const int codec = b[tag + FLV_HEADER] >> 4;
        if (kept->codec < 0) kept->codec = codec;
        kept->mixed = kept->mixed || codec != kept->codec;
        kept->aac_frames += length >= 3 && b[tag + FLV_HEADER + 1] == 1;
        mpeg_check_record(b, size, &kept->check, kept->count, tag + FLV_HEADER + 1, length - 1);
        if (kept->count < kept->capacity) {
            kept->offsets[kept->count] = tag + FLV_HEADER + 1;
            kept->lengths[kept->count] = length - 1;
        }
    } else if (kept->count < kept->capacity) {
        kept->offsets[kept->count] = tag;
    }
    kept->count++;
}

/* flv.py's _tags: the chain from `start`, resynced after a tag that disagrees with its trailing size. */
static void flv_walk(const uint8_t *b, int64_t size, int64_t start, flv_kept *kept) {
    int64_t position = start, frontier = 0;
    while (position <= size - FLV_HEADER) {
        while (position <= size - FLV_HEADER) {
            int64_t following;
            if (!flv_agrees(b, size, position, &following)) break;
            chain_fetch(b, size, position, following - position, &frontier);
            flv_keep(b, size, position, kept);
            position = following;
        }
        if (position > size - FLV_HEADER) break;
        position = flv_resync(b, size, position + 1); /* the tag at `position` disagrees with its trailing size */
        if (position < 0) break;
    }
}

/*
 * flv.py's _tags: the offsets of the tags ffmpeg's demuxer keeps, in order, written while fewer than `capacity` have
 * been. Returns how many there are (call again with a larger array when that is more than `capacity`), -1 for a
 * negative start.
 */
EXPORT int64_t earshot_flv_tags(const uint8_t *b, int64_t size, int64_t start, int64_t capacity, int64_t *tags) {
    flv_kept kept = {0, capacity, 0, tags, 0, -1, 0, 0, {0, -1, 1, 0, 0, 0, 0}};
    if (start < 0) return -1;
    flv_walk(b, size, start, &kept);
    return kept.count;
}

/*
 * flv_length's audio records among those tags (flv_keep), their payloads written while fewer than `capacity` have
 * been (0: only counted). out[0] gets the first record's codec id (-1: none), out[1] 1 when another codec follows,
 * out[2] the AAC raw frames; with `sizes` (else NULL), out[3..6] the MPEG audio test of the payloads
 * (mpeg_check_out). Returns how many records there are, -1 for a negative start.
 */
EXPORT int64_t earshot_flv_audio(const uint8_t *b, int64_t size, int64_t start, int64_t capacity, int64_t *starts,
                                 int64_t *lengths, const int32_t *sizes, int64_t *out) {
    flv_kept kept = {1, capacity, 0, starts, lengths, -1, 0, 0, {sizes, -1, 1, 0, 0, 0, 0}};
    if (start < 0) return -1;
    flv_walk(b, size, start, &kept);
    out[0] = kept.codec;
    out[1] = kept.mixed;
    out[2] = kept.aac_frames;
    mpeg_check_out(&kept.check, kept.count, out + 3);
    return kept.count;
}

/* ---- AVI chunks --------------------------------------------------------------------------------------------- */

#define AVI_CHUNK 8
#define FOURCC(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define AVI_LIST FOURCC('L', 'I', 'S', 'T')
#define AVI_RIFF FOURCC('R', 'I', 'F', 'F')
#define AVI_AVIX FOURCC('A', 'V', 'I', 'X')

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
    const uint8_t *b;
    int64_t size, claimed;
    const uint32_t *known; /* the chunk ids movi may hold (avi.py's known_ids), the audio stream's first */
    int known_count;
    uint64_t lead[4]; /* which bytes start one of them (a bit each: no memset for the compiler to call) */
} avi_movi;

static int avi_lead(const avi_movi *m, int byte) { return (int)(m->lead[byte >> 6] >> (byte & 0x3F) & 1); }

/* avi.py's `advance`: whether ffmpeg takes the chunk header at `at` (AVI_CHUNK bytes inside the buffer): a known id
 * whose size fits in the file it believes it has (a RIFF form always); its id in *name, its size in *length. */
static int avi_taken(const avi_movi *m, int64_t at, uint32_t *name, int64_t *length) {
    const uint8_t *p = m->b + at;
    *name = le32(p);
    *length = le32(p + 4);
    if (*name != m->known[0]) {
        if (!avi_lead(m, p[0])) return 0;
        int index = 1;
        while (index < m->known_count && m->known[index] != *name) index++;
        if (index == m->known_count) return 0;
    }
    return at + 7 + *length <= m->claimed || *name == AVI_RIFF;
}

/*
 * avi.py's _audio_chunks: the chunk chain of movi from `start` (LIST and RIFF entered, every other chunk stepped
 * over, padded to even), scanning byte by byte for the next header ffmpeg takes after one it does not, up to `size`.
 * The chunks whose id is known[0] (the audio stream's) are the result: their payload offsets and the payload bytes
 * present (within `size`), those with none left out, written while fewer than `capacity` have been; with `sizes`
 * (else NULL), out[0..3] the MPEG audio test of those payloads (mpeg_check_out). Returns how many there are (call
 * again with larger arrays when that is more than `capacity`), or -1 when the chain runs into a RIFF form that is
 * not an AVIX continuation (or there are no known ids).
 */
EXPORT int64_t earshot_avi_chunks(const uint8_t *b, int64_t size, int64_t start, int64_t claimed,
                                  const uint32_t *known, int known_count, int64_t capacity, int64_t *starts,
                                  int64_t *lengths, const int32_t *sizes, int64_t *out) {
    avi_movi m = {b, size, claimed, known, known_count, {0, 0, 0, 0}};
    mpeg_check check = {sizes, -1, 1, 0, 0, 0, 0};
    if (known_count < 1 || start < 0) return -1;
    for (int index = 0; index < known_count; index++) {
        const int lead = (int)(known[index] & 0xFF);
        m.lead[lead >> 6] |= (uint64_t)1 << (lead & 0x3F);
    }
    int64_t count = 0, position = start, frontier = 0, stride = 0;
    while (position <= size - AVI_CHUNK) {
        uint32_t name;
        int64_t length;
        chain_fetch(b, size, position, stride, &frontier);
        if (!avi_taken(&m, position, &name, &length)) {
            /* The byte scan: the next offset whose header ffmpeg takes. */
            int64_t at = position + 1;
            while (at <= size - AVI_CHUNK && !(avi_lead(&m, b[at]) && avi_taken(&m, at, &name, &length))) at++;
            if (at > size - AVI_CHUNK) break;
            position = at;
        }
        if (name == AVI_LIST || name == AVI_RIFF) {
            /* A RIFF form's type past the buffer reads as zeros (not AVIX) */
            if (name == AVI_RIFF && (position + 12 > size || le32(b + position + 8) != AVI_AVIX)) return -1;
            position += 12;
            continue;
        }
        if (name == known[0]) {
            const int64_t payload = position + AVI_CHUNK;
            const int64_t present = length < size - payload ? length : size - payload;
            if (present > 0) {
                mpeg_check_record(b, size, &check, count, payload, present);
                if (count < capacity) {
                    starts[count] = payload;
                    lengths[count] = present;
                }
                count++;
            }
        }
        stride = AVI_CHUNK + length + (length & 1);
        position += stride;
    }
    mpeg_check_out(&check, count, out);
    return count;
}

/* ---- ASF data packets --------------------------------------------------------------------------------------- */

/* Bytes of a length field by its 2-bit length type (absent, BYTE, WORD, DWORD). */
static const int64_t ASF_WIDTHS[4] = {0, 1, 2, 4};
#define ASF_FRAME_HEADER_SIZE 6

static const uint32_t ASF_MASKS[5] = {0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF};

/* The little-endian field of `width` (0-4) bytes at `at`; bytes past the buffer read as zeros. */
static int64_t asf_field(const uint8_t *b, int64_t size, int64_t at, int64_t width) {
    if (at >= 0 && at <= size - 4) return (int64_t)(le32(b + at) & ASF_MASKS[width]);
    uint64_t value = 0;
    for (int64_t index = 0; index < width; index++)
        if (at + index >= 0 && at + index < size) value |= (uint64_t)b[at + index] << (8 * index);
    return (int64_t)value;
}

/*
 * asf.py's `_blocks`: its packet parse, `_fragments` and `_delivered_blocks` over the packets that start in
 * [first, limit), one after the other: the blocks of `block_align` bytes in the objects of stream `stream` that
 * ffmpeg's demuxer delivers (and in the object a cut ends early), or -1 where asf.py returns None: a packet without
 * the standard error correction bytes, of another length, whose padding swallows it; a payload header ffmpeg refuses,
 * compressed, or without its object's size; fragments that do not follow one another as a muxer writes them.
 * A packet whose header the buffer cuts ends the walk, as does a payload header it cuts.
 */
EXPORT int64_t earshot_asf_blocks(const uint8_t *b, int64_t size, int64_t first, int64_t limit, int64_t packet,
                                  int stream, int64_t block_align) {
    int64_t blocks = 0, previous_end = 0, previous_object = 0, frontier = 0;
    int previous_whole = 1, short_seen = 0;
    if (first < 0 || packet <= 0 || block_align <= 0) return -1;
    for (int64_t start = first; start < limit; start += packet) {
        if (start + 11 > size) break; /* not even the shortest packet header */
        const int flags = b[start + 3], property = b[start + 4];
        int64_t at = start + 5;
        const int64_t length_width = ASF_WIDTHS[(flags >> 5) & 3];
        const int64_t stated_length = asf_field(b, size, at, length_width);
        at += length_width + ASF_WIDTHS[(flags >> 1) & 3];
        const int64_t padding_width = ASF_WIDTHS[(flags >> 3) & 3];
        int64_t padding = asf_field(b, size, at, padding_width);
        at += padding_width + 6; /* send time, duration */
        const int multiple = flags & 1;
        const int segment_type = multiple ? (int)asf_field(b, size, at, 1) : 0x80;
        at += multiple;
        if (at > size) break; /* the packet's header is cut: ffmpeg's demuxer stops */
        if (b[start] != 0x82 || b[start + 1] != 0 || b[start + 2] != 0) return -1;
        const int64_t header = at - start;
        if ((length_width > 0 && stated_length != packet) || padding >= packet || header > packet - padding) return -1;
        int64_t left = packet - padding - header;
        const int64_t segments = multiple ? (segment_type & 0x3F) : 1;
        const int64_t size_width = multiple ? ASF_WIDTHS[(segment_type >> 6) & 3] : 0;
        const int64_t offset_at = 1 + ASF_WIDTHS[(property >> 4) & 3];
        const int64_t offset_width = ASF_WIDTHS[(property >> 2) & 3];
        const int64_t replicated_at = offset_at + offset_width;
        const int64_t replicated_width = ASF_WIDTHS[property & 3];
        const int64_t replicated_end = replicated_at + replicated_width;
        for (int64_t segment = 0; segment < segments && left >= ASF_FRAME_HEADER_SIZE; segment++) {
            chain_fetch(b, size, at, 0, &frontier); /* payload headers a few hundred bytes apart: stream the file */
            const int audio = (asf_field(b, size, at, 1) & 0x7F) == stream;
            const int64_t offset = asf_field(b, size, at + offset_at, offset_width);
            const int64_t replicated = asf_field(b, size, at + replicated_at, replicated_width);
            const int64_t object = asf_field(b, size, at + replicated_end, 4);
            int64_t cursor = at + replicated_end + replicated + (replicated == 1);
            int64_t length = asf_field(b, size, cursor, size_width);
            cursor += size_width;
            const int64_t head = cursor - at, room = left - head;
            if (cursor > size && room >= 0) return blocks; /* a payload header the buffer cuts: nothing more is read */
            if (!multiple) length = room;
            const int64_t over = length > room ? length - room : 0;
            if (room < 0 || over > padding) return -1;
            if (replicated < 8 ? (audio || replicated > 1) : object >= (1 << 24)) return -1;
            /* A last payload longer than its room takes the difference from the packet's padding, as ffmpeg does. */
            padding -= over;
            left += over - head - length;
            at = cursor + length;
            if (!audio) continue;
            /* `_delivered_blocks`: each fragment starts an object after a whole one, or continues the one before. */
            const int64_t rest = size - cursor, present = rest < 0 ? 0 : (rest < length ? rest : length);
            const int64_t end = offset + length;
            if (short_seen || length <= 0 || object <= 0 || end > object) return -1;
            if (offset == 0 ? !previous_whole
                            : (previous_whole || offset != previous_end || object != previous_object))
                return -1;
            if (present < length) {
                short_seen = 1;
                blocks += (offset + present) / block_align;
            } else if (end == object) {
                blocks += object / block_align;
            }
            previous_end = end;
            previous_object = object;
            previous_whole = end == object;
        }
    }
    return blocks;
}
