/* The AVX2 forms of _utf8.h's vector loops (included by it, after the SSSE3 ones, whose
   tables and error classes they share): 32 bytes a step where the SSSE3 forms take 16.

   - srt_utf8_scan_avx2: the scan's largest byte, continuation count and JSON check;
   - srt_utf8_valid_avx2: the Keiser-Lemire check, one 32-byte block a step (the byte
     before each block's first comes from the block before, across the lanes);
   - srt_u8_decode_avx2: srt_u8_decode's chunks of 64 bytes, two of its 8-byte windows
     in one register (one a 128-bit lane: AVX2's byte shuffle works within each lane,
     which is where each window's table entry applies), so the shuffles, shifts and
     masks run once a pair; 64 ASCII bytes are widened 16 at a time by vpmovzxbw.

   Each is used where the CPU has AVX2 (checked at run time: srt_utf8_level); the
   SSSE3 forms stay for CPUs without it, and SRT_UTF8_NARROW makes a call use them, so
   tests hold both to the same answers. */
#ifndef SRT_UTF8_AVX2_H
#define SRT_UTF8_AVX2_H

#include <immintrin.h>

#define SRT_AVX2 __attribute__((target("avx2")))

/* Both 16-byte halves of a register the same table (AVX2's shuffle looks up per lane). */
/* The most bytes the padded tail of srt_u8_decode_avx2 takes: its main loop leaves fewer
   than 80 bytes, or fewer than 64 characters in up to 3 bytes each (valid UCS2 text). */
#define SRT_U8_TAIL 192

#define SRT_BOTH(...) _mm256_broadcastsi128_si256(_mm_setr_epi8(__VA_ARGS__))

SRT_AVX2 static inline __m256i srt_utf8_block32(__m256i in, __m256i prev) {
    const __m256i b1_high = SRT_BOTH(0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, (char)0x80,
                                     (char)0x80, (char)0x80, (char)0x80, 0x21, 0x01, 0x15, 0x49);
    const __m256i b1_low =
        SRT_BOTH((char)0xE7, (char)0xA3, (char)0x83, (char)0x83, (char)0x8B, (char)0xCB,
                 (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB, (char)0xCB,
                 (char)0xCB, (char)0xDB, (char)0xCB, (char)0xCB);
    const __m256i b2_high = SRT_BOTH(0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, (char)0xE6,
                                     (char)0xAE, (char)0xBA, (char)0xBA, 0x01, 0x01, 0x01, 0x01);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    /* [prev's high lane, in's low lane]: what comes before each lane of `in` */
    __m256i before = _mm256_permute2x128_si256(prev, in, 0x21);
    __m256i prev1 = _mm256_alignr_epi8(in, before, 15);
    __m256i sc = _mm256_and_si256(
        _mm256_and_si256(
            _mm256_shuffle_epi8(b1_high, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nib)),
            _mm256_shuffle_epi8(b1_low, _mm256_and_si256(prev1, nib))),
        _mm256_shuffle_epi8(b2_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), nib)));
    __m256i third = _mm256_subs_epu8(_mm256_alignr_epi8(in, before, 14), _mm256_set1_epi8(0x60));
    __m256i fourth = _mm256_subs_epu8(_mm256_alignr_epi8(in, before, 13), _mm256_set1_epi8(0x70));
    __m256i must23 =
        _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, sc);
}

SRT_AVX2 static int srt_utf8_valid_avx2(const unsigned char *s, Py_ssize_t n) {
    /* As srt_utf8_valid_ssse3: every block checked, the last one the rest padded with
       NULs (whole NULs when the rest is empty). */
    __m256i prev = _mm256_setzero_si256(), err = _mm256_setzero_si256(), in;
    unsigned char tail[32];
    Py_ssize_t i = 0;
    for (; n - i >= 32; i += 32) {
        in = _mm256_loadu_si256((const __m256i *)(s + i));
        err = _mm256_or_si256(err, srt_utf8_block32(in, prev));
        prev = in;
    }
    memset(tail, 0, 32);
    memcpy(tail, s + i, (size_t)(n - i));
    in = _mm256_loadu_si256((const __m256i *)tail);
    err = _mm256_or_si256(err, srt_utf8_block32(in, prev));
    return _mm256_testz_si256(err, err);
}

/* srt_utf8_scan for n >= 32: the last block is the last 32 bytes, whose bytes that the
   blocks before it took count no continuation twice (a shifted bit mask drops them). */
SRT_AVX2 static int srt_utf8_scan_avx2(const unsigned char *s, Py_ssize_t n, unsigned char *max_out,
                                       Py_ssize_t *cont_out, int json) {
    Py_ssize_t i = 0, cont = 0;
    __m256i vmax = _mm256_setzero_si256(), vodd = _mm256_setzero_si256(), v;
    const __m256i lim = _mm256_set1_epi8((char)0xC0); /* signed: 0x80..0xBF are below it */
    const __m256i quote = _mm256_set1_epi8('"'), slash = _mm256_set1_epi8('\\');
    __m128i m;
    while (n - i >= 32) {
        Py_ssize_t blocks = (n - i) / 32;
        __m256i acc = _mm256_setzero_si256();
        if (blocks > 255) blocks = 255; /* no byte of the per-lane counter overflows */
        for (Py_ssize_t b = 0; b < blocks; b++, i += 32) {
            v = _mm256_loadu_si256((const __m256i *)(s + i));
            vmax = _mm256_max_epu8(vmax, v);
            acc = _mm256_sub_epi8(acc, _mm256_cmpgt_epi8(lim, v)); /* +1 per continuation */
            if (json)
                vodd = _mm256_or_si256(vodd, _mm256_or_si256(_mm256_cmpeq_epi8(v, quote),
                                                             _mm256_cmpeq_epi8(v, slash)));
        }
        __m256i sums = _mm256_sad_epu8(acc, _mm256_setzero_si256());
        __m128i two = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
        cont += _mm_cvtsi128_si32(two) + _mm_cvtsi128_si32(_mm_srli_si128(two, 8));
    }
    if (i < n) {
        v = _mm256_loadu_si256((const __m256i *)(s + n - 32));
        vmax = _mm256_max_epu8(vmax, v);
        cont += __builtin_popcount((unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(lim, v)) >>
                                   (32 - (n - i)));
        if (json)
            vodd = _mm256_or_si256(vodd, _mm256_or_si256(_mm256_cmpeq_epi8(v, quote),
                                                         _mm256_cmpeq_epi8(v, slash)));
    }
    m = _mm_max_epu8(_mm256_castsi256_si128(vmax), _mm256_extracti128_si256(vmax, 1));
    m = _mm_max_epu8(m, _mm_srli_si128(m, 8));
    m = _mm_max_epu8(m, _mm_srli_si128(m, 4));
    m = _mm_max_epu8(m, _mm_srli_si128(m, 2));
    m = _mm_max_epu8(m, _mm_srli_si128(m, 1));
    *max_out = (unsigned char)_mm_cvtsi128_si32(m);
    *cont_out = cont;
    return !_mm256_testz_si256(vodd, vodd);
}

/* Two windows' characters as code points in 16-bit lanes: window m0's (bytes p..p+15)
   in the low lane, window m1's (bytes p+8..p+23) in the high one. */
SRT_AVX2 __attribute__((always_inline)) static inline __m256i srt_u8_lanes2(const unsigned char *p,
                                                                         unsigned m0, unsigned m1,
                                                                         int three) {
    __m256i in = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)),
        _mm_loadu_si128((const __m128i *)(p + 8)), 1);
    __m256i t0 = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128((const __m128i *)srt_u8_shuf[m0].s0)),
        _mm_load_si128((const __m128i *)srt_u8_shuf[m1].s0), 1);
    __m256i s0 = _mm256_shuffle_epi8(in, t0);
    __m256i cp = _mm256_or_si256(
        _mm256_and_si256(s0, _mm256_set1_epi16(0x7F)),
        _mm256_srli_epi16(_mm256_and_si256(s0, _mm256_set1_epi16(0x3F00)), 2));
    if (three) {
        __m256i t1 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_load_si128((const __m128i *)srt_u8_shuf[m0].s1)),
            _mm_load_si128((const __m128i *)srt_u8_shuf[m1].s1), 1);
        cp = _mm256_or_si256(cp, _mm256_slli_epi16(_mm256_shuffle_epi8(in, t1), 12));
    }
    return cp;
}

/* One chunk of srt_u8_decode_avx2: the 64 bytes at p (reading up to p + 79) decoded to
   out + *done, writing up to 64 characters and 8 past the last; *err gathers the
   chunk's validation, *prev is the 32 bytes before it and becomes its last 32. */
SRT_AVX2 __attribute__((always_inline)) static inline void srt_u8_chunk_avx2(
    const unsigned char *p, void *out, Py_ssize_t *done_io, __m256i *err, __m256i *prev,
    int ucs2) {
    Py_UCS1 *o1 = (Py_UCS1 *)out;
    Py_UCS2 *o2 = (Py_UCS2 *)out;
    Py_ssize_t done = *done_io;
    const __m256i lead = _mm256_set1_epi8((char)0xC0);
    __m256i a = _mm256_loadu_si256((const __m256i *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)(p + 32));
    unsigned long long high, starts;
    unsigned next;
    high = (unsigned long long)(unsigned)_mm256_movemask_epi8(a) |
           (unsigned long long)(unsigned)_mm256_movemask_epi8(b) << 32;
    *err = _mm256_or_si256(*err, srt_utf8_block32(a, *prev));
    *prev = b;
    if (!high) { /* and so block b is valid */
        if (ucs2) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                _mm256_storeu_si256(
                    (__m256i *)(o2 + done + 16 * j),
                    _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16 * j))));
        } else {
            _mm256_storeu_si256((__m256i *)(o1 + done), a);
            _mm256_storeu_si256((__m256i *)(o1 + done + 32), b);
        }
        *done_io = done + 64;
        return;
    }
    *err = _mm256_or_si256(*err, srt_utf8_block32(b, a));
    starts = ~((unsigned long long)(unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(lead, a)) |
               (unsigned long long)(unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(lead, b))
                   << 32);
    next = ~(unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(
        _mm_loadu_si128((const __m128i *)(p + 64)), _mm256_castsi256_si128(lead)));
#pragma GCC unroll 4
    for (int j = 0; j < 8; j += 2) {
        unsigned m0 = (unsigned)(starts >> (8 * j)) & 0x7FF;
        unsigned m1 = (unsigned)(starts >> (8 * j + 8)) & 0x7FF;
        if (j == 6) m1 |= (next << 8) & 0x700;
        if (ucs2) {
            __m256i cp = srt_u8_lanes2(p + 8 * j, m0, m1, 1);
            _mm_storeu_si128((__m128i *)(o2 + done), _mm256_castsi256_si128(cp));
            done += srt_u8_take[m0];
            _mm_storeu_si128((__m128i *)(o2 + done), _mm256_extracti128_si256(cp, 1));
        } else {
            __m256i cp = _mm256_packus_epi16(srt_u8_lanes2(p + 8 * j, m0, m1, 0),
                                             _mm256_setzero_si256());
            _mm_storel_epi64((__m128i *)(o1 + done), _mm256_castsi256_si128(cp));
            done += srt_u8_take[m0];
            _mm_storel_epi64((__m128i *)(o1 + done), _mm256_extracti128_si256(cp, 1));
        }
        done += srt_u8_take[m1];
    }
    *done_io = done;
}

/* srt_u8_decode, 32 bytes a step (see there and this file's head), and no scalar loop
   for the last bytes: they are copied into a buffer padded with NULs, which the same
   chunks decode into a buffer of their own (NUL is ASCII: valid, one character a
   byte), and the characters that are the string's are copied from there. */
SRT_AVX2 __attribute__((always_inline)) static inline int srt_u8_decode_avx2(
    const unsigned char *p, const unsigned char *end, void *out, Py_ssize_t len, int ucs2) {
    Py_ssize_t done = 0, rest, pad, got = 0; /* characters written */
    __m256i err = _mm256_setzero_si256(), prev = _mm256_setzero_si256();
    unsigned char tail[SRT_U8_TAIL + 16] __attribute__((aligned(32)));
    Py_UCS2 tout[SRT_U8_TAIL + 16];
    while (end - p >= 80 && len - done >= 64) {
        srt_u8_chunk_avx2(p, out, &done, &err, &prev, ucs2);
        p += 64;
    }
    rest = end - p;
    if (rest > SRT_U8_TAIL) return -1; /* more than 3 bytes a character left: invalid */
    if (rest) {
        pad = (rest + 63) / 64 * 64 - rest;
        memcpy(tail, p, (size_t)rest);
        memset(tail + rest, 0, (size_t)(pad + 16));
        for (Py_ssize_t at = 0; at < rest; at += 64)
            srt_u8_chunk_avx2(tail + at, tout, &got, &err, &prev, ucs2);
        /* valid bytes start exactly len - done characters, and the NULs one each */
        if (got != len - done + pad) return -1;
        memcpy(ucs2 ? (void *)((Py_UCS2 *)out + done) : (void *)((Py_UCS1 *)out + done), tout,
               (size_t)(len - done) * (ucs2 ? 2 : 1));
    } else if (done != len) {
        return -1;
    }
    /* NULs after the last byte: a sequence cut off at the end is too short */
    err = _mm256_or_si256(err, srt_utf8_block32(_mm256_setzero_si256(), prev));
    return _mm256_testz_si256(err, err) ? 0 : -1;
}

SRT_AVX2 static int srt_u8_decode_avx2_ucs1(const unsigned char *p, const unsigned char *end,
                                           void *out, Py_ssize_t len) {
    return srt_u8_decode_avx2(p, end, out, len, 0);
}

SRT_AVX2 static int srt_u8_decode_avx2_ucs2(const unsigned char *p, const unsigned char *end,
                                           void *out, Py_ssize_t len) {
    return srt_u8_decode_avx2(p, end, out, len, 1);
}

#endif
