# cython: language_level=3, boundscheck=False, wraparound=False
"""Query-string parsing for every HTTP request, as ``dict(urllib.parse.parse_qsl(s,
keep_blank_values=True))`` answers it, in one C pass.

``urllib``'s version is Python code that splits, replaces and percent-decodes each pair; a
``/query`` URL carries its whole InfluxQL text percent-encoded, and parsing it cost as much as
parsing the InfluxQL itself. Same semantics, checked against ``urllib`` by a property test:

- pairs are separated by ``&``; empty pairs are skipped; a pair without ``=`` has the value ``""``;
  a later duplicate name wins (``dict`` of the pairs);
- ``+`` is a space; ``%XX`` (two hex digits) is the byte XX, any other ``%`` stays as it is;
- each maximal run of ASCII characters is percent-decoded to bytes and decoded as UTF-8 with
  replacement characters for invalid sequences; non-ASCII characters are kept as they are.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc


cdef inline int _hex(Py_UCS4 ch) noexcept:
    cdef int c = <int> ch
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


cdef str _unquote_plus(str s, Py_ssize_t a, Py_ssize_t b):
    """``urllib.parse.unquote(s[a:b].replace('+', ' '))``."""
    cdef Py_ssize_t i = a, j, n = 0
    cdef Py_UCS4 c, d
    cdef int hi, lo
    cdef bint plain = True
    for j in range(a, b):
        c = s[j]
        if c == 37 or c == 43:   # '%' or '+'
            plain = False
            break
    if plain:
        return s[a:b]
    cdef char *buf = <char *> malloc(b - a + 1)
    if buf == NULL:
        raise MemoryError()
    parts = []
    try:
        while i < b:
            c = s[i]
            if c >= 128:              # a non-ASCII character ends the run; kept as it is
                if n:
                    parts.append(PyBytes_FromStringAndSize(buf, n).decode("utf-8", "replace"))
                    n = 0
                j = i
                while j < b and s[j] >= 128:
                    j += 1
                parts.append(s[i:j])
                i = j
                continue
            if c == 43:
                buf[n] = 32
            elif c == 37:
                hi = lo = -1
                if i + 2 < b:
                    d = s[i + 1]
                    hi = _hex(d)
                    d = s[i + 2]
                    lo = _hex(d)
                if hi >= 0 and lo >= 0:
                    buf[n] = <char> (hi * 16 + lo)
                    n += 1
                    i += 3
                    continue
                buf[n] = 37
            else:
                buf[n] = <char> c
            n += 1
            i += 1
        if n:
            parts.append(PyBytes_FromStringAndSize(buf, n).decode("utf-8", "replace"))
    finally:
        free(buf)
    if len(parts) == 1:
        return parts[0]
    return "".join(parts)


def parse_query_string(str qs not None) -> dict:
    """``dict(urllib.parse.parse_qsl(qs, keep_blank_values=True))``; see the module docstring."""
    cdef Py_ssize_t n = len(qs), start = 0, end, eq, k
    cdef dict out = {}
    while start <= n:
        end = qs.find("&", start)
        if end < 0:
            end = n
        if end > start:
            eq = -1
            for k in range(start, end):
                if qs[k] == 61:   # '='
                    eq = k
                    break
            if eq < 0:
                out[_unquote_plus(qs, start, end)] = ""
            else:
                out[_unquote_plus(qs, start, eq)] = _unquote_plus(qs, eq + 1, end)
        start = end + 1
    return out
