# Part of srt._core (included by _core.pyx, in order: see there).
# PostgreSQL chain reads, an append's plain message in one C call, and the keys a
# canonical body holds.

# -- PostgreSQL chain reads --------------------------------------------------------------
# The PostgreSQL engine walks a window of node rows in memory (``walk_chain``), asks for
# the walked nodes' message bodies by id, and joins the two: in Python, the id list,
# the lookup dict and the row tuples cost more than the walk itself.


def id_array(list rows not None, Py_ssize_t col):
    """The integers in column ``col`` of ``rows`` (tuples) as a PostgreSQL array literal,
    ``"{1,2,3}"``. Anything but an ``int`` there is a ``TypeError``."""
    cdef list parts = []
    cdef object row, v
    for row in rows:
        v = (<tuple?>row)[col]
        if type(v) is not int:
            raise TypeError("an id must be an int")
        parts.append(str(v))
    return "{" + ",".join(parts) + "}"


def join_bodies(list walked not None, list bodies not None):
    """The chain rows ``(id, hash, body, prefix, status, meta, depth)`` of ``walked``
    (node rows ``(id, parent, depth, message, prefix, status, meta)``) with each
    message's hash and body from ``bodies`` (rows ``(message, hash, body)`` in any
    order); ``None`` if a message is not among ``bodies``."""
    cdef dict stored = {}
    cdef list out = []
    cdef object row, m
    cdef tuple n, b
    for row in bodies:
        b = <tuple?>row
        stored[b[0]] = b
    for row in walked:
        n = <tuple?>row
        m = stored.get(n[3])
        if m is None:
            return None
        b = <tuple>m
        out.append((n[0], b[1], b[2], n[4], n[5], n[6], n[2]))
    return out


# -- an append's plain message ---------------------------------------------------------
#
# The commonest message appended, {"role": r, "content": "..."}, in one call: its
# canonical bytes (``message.canonical_text``'s) and its digest, with no Python frame.

cdef extern from *:
    """
    /* The bytes JSON (json.dumps, ensure_ascii=False) adds to escape byte c of UTF-8
       text: 1 for \\" \\\\ \\b \\f \\n \\r \\t, 5 for the other controls (\\u00XX). */
    static const unsigned char srt_json_extra[256] = {
        5,5,5,5,5,5,5,5,1,1,1,5,1,1,5,5, 5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,
        0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
    };
    #ifdef SRT_SSE2
    /* Nonzero when one of the 16 bytes at s is a control, a quote or a backslash. */
    static inline int srt_json_odd16(const unsigned char *s) {
        const __m128i v = _mm_loadu_si128((const __m128i *)s);
        return _mm_movemask_epi8(_mm_or_si128(
            _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\\\')))));
    }
    #endif
    static Py_ssize_t srt_json_extra_bytes(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t extra = 0, i = 0;
    #ifdef SRT_SSE2
        for (; n - i >= 16; i += 16)  /* (16 plain bytes at a time) */
            if (srt_json_odd16(s + i))
                for (int k = 0; k < 16; k++) extra += srt_json_extra[s[i + k]];
    #endif
        for (; i < n; i++) extra += srt_json_extra[s[i]];
        return extra;
    }
    /* Write s (n bytes, `extra` of escapes to add) JSON-escaped to out; return the end. */
    static char *srt_json_escape(char *out, const unsigned char *s, Py_ssize_t n,
                                 Py_ssize_t extra) {
        static const char hex[] = "0123456789abcdef";
        if (extra == 0) {
            memcpy(out, s, (size_t)n);
            return out + n;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
    #ifdef SRT_SSE2
            for (; n - i >= 16 && !srt_json_odd16(s + i); i += 16, out += 16)
                memcpy(out, s + i, 16);  /* (16 plain bytes at a time) */
            if (i == n) break;
    #endif
            unsigned char c = s[i];
            switch (srt_json_extra[c]) {
            case 0: *out++ = (char)c; break;
            case 1:
                *out++ = '\\\\';
                *out++ = c == '"' ? '"' : c == '\\\\' ? '\\\\' : c == '\\b' ? 'b'
                       : c == '\\f' ? 'f' : c == '\\n' ? 'n' : c == '\\r' ? 'r' : 't';
                break;
            default:
                *out++ = '\\\\'; *out++ = 'u'; *out++ = '0'; *out++ = '0';
                *out++ = hex[c >> 4]; *out++ = hex[c & 15];
            }
        }
        return out;
    }
    """
    Py_ssize_t srt_json_extra_bytes(const unsigned char* s, Py_ssize_t n)
    char* srt_json_escape(char* out, const unsigned char* s, Py_ssize_t n, Py_ssize_t extra)

from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.unicode cimport PyUnicode_AsUTF8String

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef str _ROLE = "role"
cdef str _CONTENT = "content"


def plain_prepared(object msg, dict heads not None, Py_ssize_t max_bytes, object digest, object cls):
    """``cls((digest(body), body, None))`` (a tuple of the type ``cls``) where ``body`` is
    ``message.canonical_text(msg, max_bytes)`` and ``msg`` is a dict of exactly ``role``
    (a str key of ``heads``, whose value is the body's start) and ``content`` (a str);
    ``None`` for any other message, and for one the Python path would refuse (longer
    than ``max_bytes``, a lone surrogate), which then goes through it: same bytes, same
    errors."""
    if type(msg) is not dict or PyDict_Size(msg) != 2:
        return None
    # (with errors, as ``dict.get``: a key whose ``__eq__`` raises raises here too)
    cdef PyObject* role = PyDict_GetItemWithError(msg, _ROLE)
    cdef PyObject* content = PyDict_GetItemWithError(msg, _CONTENT)
    if role is NULL or content is NULL or type(<object>role) is not str:
        return None
    if type(<object>content) is not str:
        return None
    cdef PyObject* head = PyDict_GetItem(heads, <object>role)
    if head is NULL or type(<object>head) is not bytes:
        return None
    cdef object text = <object>content
    if PyUnicode_GET_LENGTH(text) > max_bytes:
        return None
    cdef bytes utf8
    cdef const unsigned char* s
    cdef Py_ssize_t n
    if PyUnicode_IS_ASCII(text):
        s = <const unsigned char*>PyUnicode_DATA(text)
        n = PyUnicode_GET_LENGTH(text)
    else:
        try:
            utf8 = PyUnicode_AsUTF8String(text)
        except UnicodeEncodeError:
            return None  # a lone surrogate: the Python path says which
        s = <const unsigned char*>PyBytes_AS_STRING(utf8)
        n = PyBytes_GET_SIZE(utf8)
    cdef bytes start = <bytes>head
    cdef Py_ssize_t h = PyBytes_GET_SIZE(start)
    cdef Py_ssize_t extra = srt_json_extra_bytes(s, n)
    cdef Py_ssize_t size = h + 2 + n + extra + 1  # head, the quotes, the text, "}"
    if size > max_bytes:
        return None
    cdef bytes body = PyBytes_FromStringAndSize(NULL, size)
    cdef char* p = PyBytes_AS_STRING(body)
    memcpy(p, PyBytes_AS_STRING(start), h)
    p += h
    p[0] = b'"'
    p = srt_json_escape(p + 1, s, n, extra)
    p[0] = b'"'
    p[1] = b'}'
    return tuple.__new__(cls, (digest(body), body, None))


def new_nodes(object prepared, list prefixes not None, Py_ssize_t plain, object status, object cls):
    """``[cls((h, body, prefix, meta, st)) ...]`` for each ``(h, body, meta)`` of
    ``prepared`` and its prefix hash in ``prefixes`` (as many), ``st`` being ``None``
    for the first ``plain`` and ``status`` after them, or, when ``status`` is a list
    (as many), each message's own: a commit's nodes, each a tuple of the type ``cls``
    (a NamedTuple's own constructor is a Python call)."""
    cdef list out = []
    cdef Py_ssize_t i = 0
    cdef object p, h, body, meta
    cdef bint each = type(status) is list
    if len(prepared) != len(prefixes):
        raise ValueError("a prefix hash for each prepared message, no more")
    if each and len(<list>status) != len(prefixes):
        raise ValueError("a status for each prepared message, no more")
    for p in prepared:
        h, body, meta = p
        out.append(tuple.__new__(cls, (h, body, prefixes[i], meta, (<list>status)[i] if each
                                       else None if i < plain else status)))
        i += 1
    return out


def first_items(object rows):
    """The first item of each of ``rows``, in a list."""
    return [row[0] for row in rows]


# -- keys a canonical body holds ---------------------------------------------------------

from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

cdef extern from *:
    """
    /* The first ``,"`` in [s, end): where its comma is, or NULL. */
    static const char *srt_comma_quote(const char *s, const char *end) {
    #ifdef SRT_SSE2
        const __m128i comma = _mm_set1_epi8(','), quote = _mm_set1_epi8('"');
        for (; end - s >= 17; s += 16) {  /* (16 pairs at a time) */
            int m = _mm_movemask_epi8(_mm_and_si128(
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)s), comma),
                _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + 1)), quote)));
            if (m)
                for (int k = 0; k < 16; k++)
                    if (m & (1 << k)) return s + k;
        }
    #endif
        for (; end - s >= 2; s++)
            if (s[0] == ',' && s[1] == '"') return s;
        return NULL;
    }
    """
    const char* srt_comma_quote(const char* s, const char* end)


def find_odd_key(list items not None, tuple keys not None):
    """Index of the first of ``items`` (bytes, canonical message bodies) holding ``,"``
    followed by neither one of ``keys`` (bytes) and ``":`` nor its last byte, ``}``;
    -1 if none. A JSON string holds a quote only escaped, so every ``,"key":`` in a body
    is a key (of the message or of an object in it); a text ending in a comma also gives
    ``,"``, which is a false alarm unless it ends the body. One C pass, 16 bytes at a
    time: a cold load asks this of a whole chain (``wire.openai_chat``)."""
    cdef Py_ssize_t i, j, kl, left
    cdef object item, key, k
    cdef const char* p
    cdef const char* end
    cdef const char* hit
    cdef bint known
    for k in keys:
        if type(k) is not bytes:
            raise TypeError("keys must be bytes")
    for i in range(len(items)):
        item = items[i]
        if type(item) is not bytes:
            raise TypeError("items must be bytes")
        p = PyBytes_AS_STRING(<bytes>item)
        end = p + PyBytes_GET_SIZE(<bytes>item)
        while True:
            hit = srt_comma_quote(p, end)
            if hit == NULL:
                break
            hit += 2
            p = hit
            left = end - hit
            if left == 1 and hit[0] == b'}':
                break
            known = False
            for j in range(PyTuple_GET_SIZE(keys)):
                key = <object>PyTuple_GET_ITEM(keys, j)
                kl = PyBytes_GET_SIZE(<bytes>key)
                if (
                    left >= kl + 2
                    and memcmp(hit, PyBytes_AS_STRING(<bytes>key), kl) == 0
                    and hit[kl] == b'"'
                    and hit[kl + 1] == b':'
                ):
                    known = True
                    break
            if not known:
                return i
    return -1
