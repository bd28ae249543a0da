/* srt_decode_utf8_as: a str from UTF-8 bytes, as PyUnicode_DecodeUTF8(s, n, "strict").

   Two passes. The first finds the largest byte and counts the continuation bytes, 16
   bytes at a time: the largest byte gives the string's kind (a valid sequence's lead
   byte says how large its character is), the count its length, so the string is
   allocated once at its final kind and size. The second decodes into it: where the
   CPU has SSSE3 (checked at run time), a UCS1 or UCS2 string of 80 bytes or more by
   the vector decoder (srt_u8_decode: up to 8 characters of any size a shuffle, each
   chunk validated on the way), else by the scalar loop, which widens 16 ASCII bytes at
   a time and decodes one character at a time in between. CPython's own decoder starts
   at one byte a character and widens the string (a copy) at the first larger
   character.

   Anything the second pass does not accept (a malformed or truncated sequence, an
   overlong form, a surrogate, a code point past U+10FFFF) drops the string and
   returns PyUnicode_DecodeUTF8's answer, so the result and the error raised are
   always CPython's. */
#ifndef SRT_UTF8_H
#define SRT_UTF8_H

#include <Python.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define SRT_SSE2 1
#endif

/* The largest byte of s[0..n) and how many of them are continuation bytes; with
   `json` (a constant in each caller), 1 when a quote or a backslash is among them,
   else 0. */
static inline int srt_utf8_scan(const unsigned char *s, Py_ssize_t n, unsigned char *max_out,
                                Py_ssize_t *cont_out, int json) {
    Py_ssize_t i = 0, cont = 0;
    unsigned char mx = 0;
    int odd = 0;
#ifdef SRT_SSE2
    __m128i vmax = _mm_setzero_si128(), vodd = _mm_setzero_si128();
    const __m128i lim = _mm_set1_epi8((char)0xC0); /* signed: 0x80..0xBF are below it */
    while (n - i >= 16) {
        /* Up to 255 blocks per round, so no byte of the per-lane counter overflows. */
        Py_ssize_t blocks = (n - i) / 16;
        __m128i acc = _mm_setzero_si128();
        if (blocks > 255) blocks = 255;
        for (Py_ssize_t b = 0; b < blocks; b++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            vmax = _mm_max_epu8(vmax, v);
            acc = _mm_sub_epi8(acc, _mm_cmplt_epi8(v, lim)); /* +1 per continuation */
            if (json)
                vodd = _mm_or_si128(vodd, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
        }
        __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
        cont += _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
    unsigned char lanes[16];
    _mm_storeu_si128((__m128i *)lanes, vmax);
    for (int k = 0; k < 16; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    odd = _mm_movemask_epi8(vodd) != 0;
#endif
    for (; i < n; i++) {
        unsigned char c = s[i];
        mx = c > mx ? c : mx;
        cont += (c & 0xC0) == 0x80;
        if (json) odd |= c == '"' || c == '\\';
    }
    *max_out = mx;
    *cont_out = cont;
    return odd;
}

/* Decode into a string of `kind` (1, 2 or 4 bytes a character) holding exactly the
   string's characters; 0 on success, -1 on anything CPython would refuse (or that
   would not fit the kind: then the scan was fooled by malformed input). */
#define SRT_UTF8_BODY(T, LIMIT)                                                            \
    {                                                                                      \
        T *o = (T *)out, *oend = o + len;                                                  \
        while (p < end) {                                                                  \
            Py_UCS4 c = *p;                                                                \
            if (c < 0x80) {                                                                \
                SRT_ASCII_RUN(T)                                                           \
                if (o >= oend) return -1;                                                  \
                *o++ = (T)c;                                                               \
                p++;                                                                       \
                continue;                                                                  \
            }                                                                              \
            if (c < 0xC2) return -1;                                                       \
            if (c < 0xE0) {                                                                \
                if (end - p < 2 || (p[1] & 0xC0) != 0x80) return -1;                       \
                c = ((c & 0x1F) << 6) | (p[1] & 0x3F);                                     \
                p += 2;                                                                    \
            } else if (c < 0xF0) {                                                         \
                if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)          \
                    return -1;                                                             \
                c = ((c & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);    \
                if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return -1;                  \
                p += 3;                                                                    \
            } else if (c < 0xF5) {                                                         \
                if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||        \
                    (p[3] & 0xC0) != 0x80)                                                 \
                    return -1;                                                             \
                c = ((c & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12) |                  \
                    ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);                         \
                if (c < 0x10000 || c > 0x10FFFF) return -1;                                \
                p += 4;                                                                    \
            } else {                                                                       \
                return -1;                                                                 \
            }                                                                              \
            if (c > (LIMIT) || o >= oend) return -1;                                       \
            *o++ = (T)c;                                                                   \
        }                                                                                  \
        return o == oend ? 0 : -1;                                                         \
    }

#ifdef SRT_SSE2
/* A run of 16 ASCII bytes, widened to the string's kind in a few instructions. */
#define SRT_ASCII_RUN(T)                                                                   \
    while (end - p >= 16 && oend - o >= 16) {                                              \
        __m128i v = _mm_loadu_si128((const __m128i *)p);                                   \
        int high = _mm_movemask_epi8(v);                                                   \
        srt_widen_##T(o, v); /* all 16; what follows the run is written over */           \
        if (high) {                                                                        \
            int k = srt_ctz(high);                                                         \
            o += k;                                                                        \
            p += k;                                                                        \
            break;                                                                         \
        }                                                                                  \
        o += 16;                                                                           \
        p += 16;                                                                           \
    }                                                                                      \
    if (p >= end) break;                                                                   \
    c = *p;                                                                                \
    if (c >= 0x80) continue;

#if defined(__GNUC__) || defined(__clang__)
#define srt_ctz(x) __builtin_ctz((unsigned)(x))
#else
static inline int srt_ctz(int x) {
    int k = 0;
    while (!(x & 1)) x >>= 1, k++;
    return k;
}
#endif
static inline void srt_widen_Py_UCS1(Py_UCS1 *o, __m128i v) { _mm_storeu_si128((__m128i *)o, v); }
static inline void srt_widen_Py_UCS2(Py_UCS2 *o, __m128i v) {
    __m128i z = _mm_setzero_si128();
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi8(v, z));
    _mm_storeu_si128((__m128i *)(o + 8), _mm_unpackhi_epi8(v, z));
}
static inline void srt_widen_Py_UCS4(Py_UCS4 *o, __m128i v) {
    __m128i z = _mm_setzero_si128();
    __m128i lo = _mm_unpacklo_epi8(v, z), hi = _mm_unpackhi_epi8(v, z);
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(lo, z));
    _mm_storeu_si128((__m128i *)(o + 4), _mm_unpackhi_epi16(lo, z));
    _mm_storeu_si128((__m128i *)(o + 8), _mm_unpacklo_epi16(hi, z));
    _mm_storeu_si128((__m128i *)(o + 12), _mm_unpackhi_epi16(hi, z));
}
#else
#define SRT_ASCII_RUN(T)
#endif

static int srt_utf8_ucs1(const unsigned char *p, const unsigned char *end, void *out,
                         Py_ssize_t len) SRT_UTF8_BODY(Py_UCS1, 0xFF)
static int srt_utf8_ucs2(const unsigned char *p, const unsigned char *end, void *out,
                         Py_ssize_t len) SRT_UTF8_BODY(Py_UCS2, 0xFFFF)
static int srt_utf8_ucs4(const unsigned char *p, const unsigned char *end, void *out,
                         Py_ssize_t len) SRT_UTF8_BODY(Py_UCS4, 0x10FFFF)

/* srt_utf8_valid: 1 when s[0..n) is UTF-8 that PyUnicode_DecodeUTF8 accepts (no
   overlong form, surrogate, code point past U+10FFFF or truncated sequence), else 0.
   On x86 with SSSE3 (checked at run time) 16 bytes at a time, by the lookup algorithm
   of Keiser and Lemire ("Validating UTF-8 in less than one instruction per byte",
   2021, as simdjson and simdutf implement it): three table lookups classify each byte
   with the one before it, a shift finds the continuations a 3- or 4-byte lead needs. */
static int srt_utf8_valid_scalar(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        unsigned int c = *p;
        Py_UCS4 cp;
        if (c < 0x80) {
            p++;
        } else if (c < 0xC2) {
            return 0;
        } else if (c < 0xE0) {
            if (end - p < 2 || (p[1] & 0xC0) != 0x80) return 0;
            p += 2;
        } else if (c < 0xF0) {
            if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
            cp = ((c & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
            p += 3;
        } else if (c < 0xF5) {
            if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
                (p[3] & 0xC0) != 0x80)
                return 0;
            cp = ((c & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12) |
                 ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
            if (cp < 0x10000 || cp > 0x10FFFF) return 0;
            p += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <tmmintrin.h>
#define SRT_UTF8_SSSE3 1

/* The error classes of a byte pair (simdjson's names): bit 0 too short (a lead not
   followed by a continuation), 1 too long (a continuation after ASCII), 2 overlong
   3-byte, 3 too large, 4 surrogate, 5 overlong 2-byte, 6 too large (1000____) or
   overlong 4-byte, 7 two continuations. A pair is bad when all three lookups agree. */
__attribute__((target("ssse3"))) static __m128i srt_utf8_block(__m128i in, __m128i prev) {
    const __m128i b1_high = _mm_setr_epi8(0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
                                          (char)0x80, (char)0x80, (char)0x80, (char)0x80,
                                          0x21, 0x01, 0x15, 0x49);
    const __m128i b1_low = _mm_setr_epi8(
        (char)0xE7, (char)0xA3, (char)0x83, (char)0x83, (char)0x8B, (char)0xCB, (char)0xCB,
        (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB, (char)0xDB,
        (char)0xCB, (char)0xCB);
    const __m128i b2_high = _mm_setr_epi8(0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
                                          (char)0xE6, (char)0xAE, (char)0xBA, (char)0xBA,
                                          0x01, 0x01, 0x01, 0x01);
    const __m128i nib = _mm_set1_epi8(0x0F);
    __m128i prev1 = _mm_alignr_epi8(in, prev, 15);
    __m128i sc = _mm_and_si128(
        _mm_and_si128(
            _mm_shuffle_epi8(b1_high, _mm_and_si128(_mm_srli_epi16(prev1, 4), nib)),
            _mm_shuffle_epi8(b1_low, _mm_and_si128(prev1, nib))),
        _mm_shuffle_epi8(b2_high, _mm_and_si128(_mm_srli_epi16(in, 4), nib)));
    __m128i third = _mm_subs_epu8(_mm_alignr_epi8(in, prev, 14), _mm_set1_epi8(0x60));
    __m128i fourth = _mm_subs_epu8(_mm_alignr_epi8(in, prev, 13), _mm_set1_epi8(0x70));
    __m128i must23 = _mm_and_si128(_mm_or_si128(third, fourth), _mm_set1_epi8((char)0x80));
    return _mm_xor_si128(must23, sc);
}

__attribute__((target("ssse3"))) static int srt_utf8_valid_ssse3(const unsigned char *s,
                                                                  Py_ssize_t n) {
    /* Every block is checked (no ASCII shortcut: text that mixes scripts would make its
       branch a coin toss). The last block is the rest padded with NULs, whole NULs when
       the rest is empty: a sequence cut off at the end meets one and is too short. */
    __m128i prev = _mm_setzero_si128(), err = _mm_setzero_si128(), in;
    unsigned char tail[16];
    Py_ssize_t i = 0;
    for (; n - i >= 16; i += 16) {
        in = _mm_loadu_si128((const __m128i *)(s + i));
        err = _mm_or_si128(err, srt_utf8_block(in, prev));
        prev = in;
    }
    memset(tail, 0, 16);
    memcpy(tail, s + i, (size_t)(n - i));
    in = _mm_loadu_si128((const __m128i *)tail);
    err = _mm_or_si128(err, srt_utf8_block(in, prev));
    return _mm_movemask_epi8(_mm_cmpeq_epi8(err, _mm_setzero_si128())) == 0xFFFF;
}
#endif

/* The vector decoder for the UCS1 and UCS2 kinds (x86 with SSSE3, checked at run time),
   after Lemire and Keiser's simdutf ("utf8_to_utf16", its SSE kernel): a bit mask of
   where characters start picks a pair of byte shuffles that move up to 8 characters
   into 16-bit lanes, where a few shifts and masks make their code points. No branch a
   character: a block of ASCII, 2- and 3-byte characters in any mix takes the same
   instructions. Each chunk is validated as it is decoded (srt_utf8_valid's blocks,
   each with the 16 bytes before it), and what the windows made of invalid bytes is
   dropped: they only read and write inside the chunk and the string whatever the
   bytes are.

   Unlike simdutf's kernel, whose next block starts where the last one's characters
   end (a chain of table lookups, each waiting on the one before), the windows sit at
   fixed places: window j of a chunk is bytes 8j..8j+15 and decodes the characters
   that start in its first 8 bytes (a character of up to 3 bytes that starts there
   ends by byte 8j+9), its output going where window j - 1's ends. Its mask is bits
   8j..8j+10 of the chunk's start mask, so no window waits on another's lookup.

   The tables, one entry per 11-bit mask m (bit i set: byte i of the window starts a
   character; bits 8..10 only end the characters that start in bytes 0..7), made at
   first use:
     srt_u8_shuf[m].s0  character k's last byte to byte 2k of the result, its second
                        last (a 2-byte character's lead, a 3-byte one's middle) to byte
                        2k + 1, zero (0x80) for what a character does not have;
     srt_u8_shuf[m].s1  a 3-byte character's lead to byte 2k, all else zero;
     srt_u8_take[m]     how many characters start in bytes 0..7.
   Lane k is then (s0 & 0x7F) | (s0 & 0x3F00) >> 2 | s1 << 12: ASCII keeps 7 bits, a
   continuation byte 6, a 2-byte lead 5 (110xxxxx & 0x3F), a 3-byte lead its low 4
   (the shift drops the rest). */
#ifdef SRT_UTF8_SSSE3
typedef struct {
    unsigned char s0[16], s1[16];
} srt_u8_pair;
static srt_u8_pair srt_u8_shuf[2048] __attribute__((aligned(16)));
static unsigned char srt_u8_take[2048];
static int srt_u8_ready = 0; /* the tables are made; set (under the GIL) once */

static void srt_u8_tables(void) {
    for (int m = 0; m < 2048; m++) {
        srt_u8_pair *t = &srt_u8_shuf[m];
        int k = 0; /* the next lane */
        memset(t, 0x80, sizeof *t);
        for (int i = 0; i < 8; i++) {
            int next = i + 1, last;
            if (!((m >> i) & 1)) continue; /* not a character's first byte */
            while (next < 11 && !((m >> next) & 1)) next++;
            if (next - i > 3) break; /* no mask of valid UCS1/UCS2 text */
            last = next - 1;
            t->s0[2 * k] = (unsigned char)last;
            if (last > i) t->s0[2 * k + 1] = (unsigned char)(last - 1);
            if (last - i == 2) t->s1[2 * k] = (unsigned char)i;
            k++;
        }
        srt_u8_take[m] = (unsigned char)k;
    }
    srt_u8_ready = 1;
}

/* The characters of the window at p, `m` its mask, as code points in 16-bit lanes. */
__attribute__((target("ssse3"), always_inline)) static inline __m128i srt_u8_lanes(
    const unsigned char *p, unsigned m, int three) {
    __m128i in = _mm_loadu_si128((const __m128i *)p);
    __m128i s0 = _mm_shuffle_epi8(in, _mm_load_si128((const __m128i *)srt_u8_shuf[m].s0));
    __m128i cp = _mm_or_si128(_mm_and_si128(s0, _mm_set1_epi16(0x7F)),
                              _mm_srli_epi16(_mm_and_si128(s0, _mm_set1_epi16(0x3F00)), 2));
    if (three) { /* constant in each caller: UCS1 text has no 3-byte character */
        __m128i s1 = _mm_shuffle_epi8(in, _mm_load_si128((const __m128i *)srt_u8_shuf[m].s1));
        cp = _mm_or_si128(cp, _mm_slli_epi16(s1, 12));
    }
    return cp;
}

/* The end of a vector decode that took the (valid) chunks from `start` to `p`, writing
   `done` characters: the scalar loop does the rest, from the first byte of the
   character byte p - 1 is in (at most 3 bytes back), decoding it again: whether its
   sequence is complete, and the continuation bytes the next chunk would have checked,
   are for the scalar loop to see. */
static inline int srt_u8_finish(const unsigned char *start, const unsigned char *p,
                                const unsigned char *end, void *out, Py_ssize_t done,
                                Py_ssize_t len, int ucs2) {
    if (p > start) {
        p--;
        while (p > start && (*p & 0xC0) == 0x80) p--;
        done--;
    }
    if (ucs2) return srt_utf8_ucs2(p, end, (Py_UCS2 *)out + done, len - done);
    return srt_utf8_ucs1(p, end, (Py_UCS1 *)out + done, len - done);
}

/* Decode UTF-8 into a UCS1 (`ucs2` 0) or UCS2 string of exactly `len` characters,
   64 bytes at a time while 80 bytes and 64 characters remain, each chunk checked by
   srt_utf8_valid's blocks as it goes: 64 ASCII bytes are widened at once; any other
   chunk is windows 0..7 (window 7's mask takes 3 bits from the next 16 bytes). A
   chunk may begin on the continuation bytes of a character the last one took: they
   start nothing, so no window takes them. The scalar loop does the rest, from the
   first byte of the last character the chunks took (decoding it again). 0, or -1
   where a chunk was invalid or the scalar loop refuses. */
__attribute__((target("ssse3"), always_inline)) static inline int srt_u8_decode(
    const unsigned char *p, const unsigned char *end, void *out, Py_ssize_t len, int ucs2) {
    Py_UCS1 *o1 = (Py_UCS1 *)out;
    Py_UCS2 *o2 = (Py_UCS2 *)out;
    const unsigned char *start = p;
    Py_ssize_t done = 0; /* characters written */
    const __m128i lead = _mm_set1_epi8((char)0xC0), zero = _mm_setzero_si128();
    __m128i err = zero, prev = zero; /* prev: the 16 bytes before the chunk */
    while (end - p >= 80 && len - done >= 64) {
        __m128i v[4];
        unsigned long long high = 0, starts = 0;
        unsigned next;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            v[j] = _mm_loadu_si128((const __m128i *)(p + 16 * j));
            high |= (unsigned long long)(unsigned)_mm_movemask_epi8(v[j]) << (16 * j);
            starts |= (unsigned long long)(unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v[j], lead))
                      << (16 * j); /* continuation bytes, inverted below */
        }
        err = _mm_or_si128(err, srt_utf8_block(v[0], prev));
        prev = v[3];
        if (!high) { /* and so blocks 1..3 are valid */
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                if (ucs2) {
                    srt_widen_Py_UCS2(o2 + done + 16 * j, v[j]);
                } else {
                    _mm_storeu_si128((__m128i *)(o1 + done + 16 * j), v[j]);
                }
            }
            p += 64;
            done += 64;
            continue;
        }
        err = _mm_or_si128(err, _mm_or_si128(srt_utf8_block(v[1], v[0]),
                                             _mm_or_si128(srt_utf8_block(v[2], v[1]),
                                                          srt_utf8_block(v[3], v[2]))));
        starts = ~starts;
        next = ~(unsigned)_mm_movemask_epi8(
            _mm_cmplt_epi8(_mm_loadu_si128((const __m128i *)(p + 64)), lead));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            unsigned m = (unsigned)(starts >> (8 * j)) & 0x7FF;
            if (j == 7) m |= (next << 8) & 0x700;
            if (ucs2) {
                _mm_storeu_si128((__m128i *)(o2 + done), srt_u8_lanes(p + 8 * j, m, 1));
            } else {
                __m128i cp = srt_u8_lanes(p + 8 * j, m, 0);
                _mm_storel_epi64((__m128i *)(o1 + done), _mm_packus_epi16(cp, zero));
            }
            done += srt_u8_take[m];
        }
        p += 64;
    }
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(err, zero)) != 0xFFFF) return -1;
    return srt_u8_finish(start, p, end, out, done, len, ucs2);
}

__attribute__((target("ssse3"))) static int srt_u8_decode_ucs1(const unsigned char *p,
                                                               const unsigned char *end,
                                                               void *out, Py_ssize_t len) {
    return srt_u8_decode(p, end, out, len, 0);
}

__attribute__((target("ssse3"))) static int srt_u8_decode_ucs2(const unsigned char *p,
                                                               const unsigned char *end,
                                                               void *out, Py_ssize_t len) {
    return srt_u8_decode(p, end, out, len, 1);
}

#include "_utf8_avx2.h"
#endif

/* The widest vector loops the CPU runs: 2 AVX2, 1 SSSE3, 0 none (checked once). */
static int srt_utf8_level(void) {
    static int level = -1;
    if (level < 0) {
#ifdef SRT_UTF8_SSSE3
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
#else
        level = 0;
#endif
    }
    return level;
}

/* srt_utf8_valid by the loops of `level` at most (tests hold each to the same answers). */
static int srt_utf8_valid_at(const unsigned char *s, Py_ssize_t n, int level) {
    if (level > srt_utf8_level()) level = srt_utf8_level();
#ifdef SRT_UTF8_SSSE3
    if (level == 2) return srt_utf8_valid_avx2(s, n);
    if (level == 1) return srt_utf8_valid_ssse3(s, n);
#endif
    return srt_utf8_valid_scalar(s, s + n);
}

static int srt_utf8_valid(const unsigned char *s, Py_ssize_t n) {
    return srt_utf8_valid_at(s, n, 2);
}

/* What srt_decode_utf8_as does, or-ed together: */
#define SRT_UTF8_VECTOR 1 /* the vector decoder where the CPU has it, else the scalar loop */
#define SRT_UTF8_JSON 2   /* None (not an error) for bytes holding a quote or a backslash, as
                             JSON string text without escapes does not */
#define SRT_UTF8_OWN 4    /* for tests: ValueError where srt's decoders hand the bytes to
                             CPython's, so that valid text shows them never doing so */
#define SRT_UTF8_NARROW 8 /* for tests: the SSSE3 loops where the CPU has AVX2 too */

static PyObject *srt_utf8_cpython(const char *data, Py_ssize_t n, int how) {
    if (how & SRT_UTF8_OWN) {
        PyErr_SetString(PyExc_ValueError, "srt's UTF-8 decoder did not take these bytes");
        return NULL;
    }
    return PyUnicode_DecodeUTF8(data, n, "strict");
}

/* A str from UTF-8 bytes, as PyUnicode_DecodeUTF8(data, n, "strict"), `how` the
   SRT_UTF8_ flags. */
static PyObject *srt_decode_utf8_as(const char *data, Py_ssize_t n, int how) {
    const unsigned char *s = (const unsigned char *)data;
    unsigned char mx;
    Py_ssize_t cont;
    PyObject *str;
    int kind, bad, odd, level = 0;
    if (how & SRT_UTF8_VECTOR) {
        level = srt_utf8_level();
        if (level > 1 && (how & SRT_UTF8_NARROW)) level = 1;
    }
#ifdef SRT_UTF8_SSSE3
    if (level == 2 && n >= 32) {
        odd = (how & SRT_UTF8_JSON) ? srt_utf8_scan_avx2(s, n, &mx, &cont, 1)
                                    : srt_utf8_scan_avx2(s, n, &mx, &cont, 0);
    } else
#endif
        if (how & SRT_UTF8_JSON) {
        odd = srt_utf8_scan(s, n, &mx, &cont, 1);
    } else {
        odd = srt_utf8_scan(s, n, &mx, &cont, 0);
    }
    if (odd) { /* only with SRT_UTF8_JSON */
        Py_INCREF(Py_None);
        return Py_None;
    }
    if (mx < 0x80) {
        if (n == 1) return PyUnicode_FromOrdinal(s[0]); /* CPython's shared one */
        str = PyUnicode_New(n, 0x7F);
        if (str != NULL && n) memcpy(PyUnicode_DATA(str), s, (size_t)n);
        return str;
    }
    if (mx < 0xC2 || mx > 0xF4) return srt_utf8_cpython(data, n, how);
    /* The largest lead byte fixes the kind: C2-C3 start U+0080..U+00FF, C4-EF go up
       to U+FFFF, F0-F4 beyond. */
    kind = mx < 0xC4 ? 1 : mx < 0xF0 ? 2 : 4;
    str = PyUnicode_New(n - cont, kind == 1 ? 0xFF : kind == 2 ? 0xFFFF : 0x10FFFF);
    if (str == NULL) return NULL;
#ifdef SRT_UTF8_SSSE3
    if (level && kind < 4 && n >= (level == 2 ? 32 : 80)) {
        if (!srt_u8_ready) srt_u8_tables();
        if (level == 2)
            bad = (kind == 1 ? srt_u8_decode_avx2_ucs1 : srt_u8_decode_avx2_ucs2)(
                s, s + n, PyUnicode_DATA(str), n - cont);
        else
            bad = (kind == 1 ? srt_u8_decode_ucs1 : srt_u8_decode_ucs2)(
                s, s + n, PyUnicode_DATA(str), n - cont);
    } else
#endif
        if (kind == 1)
        bad = srt_utf8_ucs1(s, s + n, PyUnicode_DATA(str), n - cont);
    else if (kind == 2)
        bad = srt_utf8_ucs2(s, s + n, PyUnicode_DATA(str), n - cont);
    else
        bad = srt_utf8_ucs4(s, s + n, PyUnicode_DATA(str), n - cont);
    if (bad) {
        Py_DECREF(str);
        return srt_utf8_cpython(data, n, how);
    }
    if (kind == 1 && n - cont == 1) {
        /* One character below U+0100: CPython's shared one, as its own decoder gives
           (Python 3.13's also caches its UTF-8, so a fresh copy would differ in size). */
        Py_UCS4 c = PyUnicode_READ_CHAR(str, 0);
        Py_DECREF(str);
        return PyUnicode_FromOrdinal(c);
    }
    return str;
}

/* srt_json_text: 1 when s[0..n) is exactly what json.dumps(text, ensure_ascii=False)
   writes between the quotes for some str ``text`` (valid UTF-8, ``srt_utf8_valid``; no
   raw control character, quote or lone backslash; the only escapes the encoder makes:
   \" \\ \b \f \n \r \t, and \u00xx in lowercase hex for the other control
   characters), else 0. Such bytes decode to ``text`` and encode back to themselves,
   so a fragment may copy them instead of decoding and encoding them again. */
static int srt_json_text(const unsigned char *s, Py_ssize_t n) {
    const unsigned char *p = s, *end = s + n;
    int high = 0;
#ifdef SRT_SSE2
    const __m128i ctrl = _mm_set1_epi8(0x1F), quote = _mm_set1_epi8('"'),
                  slash = _mm_set1_epi8('\\');
    __m128i any = _mm_setzero_si128();
#endif
    while (p < end) {
#ifdef SRT_SSE2
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            __m128i odd = _mm_or_si128(
                _mm_cmpeq_epi8(_mm_min_epu8(v, ctrl), v), /* 0x00..0x1F */
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)));
            int m = _mm_movemask_epi8(odd);
            any = _mm_or_si128(any, v);
            if (m) {
                p += srt_ctz(m);
                break;
            }
            p += 16;
        }
        if (p >= end) break;
#endif
        unsigned int c = *p;
        if (c >= 0x80) {
            high = 1;
            p++;
            continue;
        }
        if (c < 0x20 || c == '"') return 0;
        if (c == '\\') {
            unsigned int e, lo;
            if (end - p < 2) return 0;
            e = p[1];
            if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                p += 2;
                continue;
            }
            if (e != 'u' || end - p < 6 || p[2] != '0' || p[3] != '0') return 0;
            if (p[4] != '0' && p[4] != '1') return 0;
            lo = p[5];
            if (lo >= '0' && lo <= '9')
                lo -= '0';
            else if (lo >= 'a' && lo <= 'f')
                lo -= 'a' - 10;
            else
                return 0;
            lo += (p[4] - '0') * 16;
            /* these five have a short escape, which the encoder uses instead */
            if (lo == 0x08 || lo == 0x09 || lo == 0x0A || lo == 0x0C || lo == 0x0D) return 0;
            p += 6;
            continue;
        }
        p++;
    }
#ifdef SRT_SSE2
    high |= _mm_movemask_epi8(any);
#endif
    return high ? srt_utf8_valid(s, n) : 1;
}

#endif
