# cython: language_level=3, boundscheck=False, wraparound=False
"""InfluxQL text helpers on every cached query: the literal lifting of the statement cache and
RFC3339 time literals, each in one C pass.

``shape_of(text)`` is what the statement cache keys queries by (chronosdb/query/influxql/cache.py,
whose module docstring says why): the text with each literal replaced by NUL and a kind letter,
and the lifted literals' raw text in order. Its specification is the regex of the plain-Python
twin (``qlex_ref.shape_of``): the leftmost match, in the regex's own priority order, of

    "quoted identifier" | 'string' | (?<![\\w.$]) (duration | float | integer)

where a duration is ``(?:\\d+(?:ns|ms|u|µ|s|m|h|d|w))+(?!\\w)``, a float ``\\d+\\.\\d*|\\.\\d+`` and
an integer ``\\d+``; quoted identifiers are skipped over (kept in the key), strings and numbers
lifted. ``\\d`` and ``\\w`` are the regex engine's Unicode classes (decimal digits; alphanumerics
and ``_``), read here through the same CPython predicates. A property test holds the two equal.

``rfc3339_ns(text)`` reads ``YYYY-MM-DD[(T| )HH:MM:SS[.fraction]][Z|z|±HH:MM]`` with ASCII digits
into int64 ns since the epoch, exactly as ``durations.parse_time`` does; it returns None for
anything else (other digits, bad fields, out of range), and the caller then asks
``parse_time``, which answers the same value or raises its error. Tested against it.
"""
from libc.stdint cimport int64_t


cdef extern from "Python.h":
    bint Py_UNICODE_ISDECIMAL(Py_UCS4 ch)
    bint Py_UNICODE_ISALNUM(Py_UCS4 ch)


cdef inline bint _digit(Py_UCS4 c) noexcept:
    return Py_UNICODE_ISDECIMAL(c)


cdef inline bint _word(Py_UCS4 c) noexcept:
    return c == u'_' or Py_UNICODE_ISALNUM(c)


cdef Py_ssize_t _quoted(str text, Py_ssize_t i, Py_ssize_t n, Py_UCS4 q):
    """End (exclusive) of the quoted token starting at i (text[i] == q), or -1: ``q(?:[^q\\\\\\n]|
    \\\\.)*q``; ``.`` is any character but a newline."""
    cdef Py_UCS4 c
    i += 1
    while i < n:
        c = text[i]
        if c == q:
            return i + 1
        if c == u'\n':
            return -1
        if c == u'\\':
            if i + 1 >= n or text[i + 1] == u'\n':
                return -1
            i += 2
            continue
        i += 1
    return -1


cdef Py_ssize_t _duration(str text, Py_ssize_t i, Py_ssize_t n):
    """End of ``(?:\\d+UNIT)+(?!\\w)`` at i, as the regex engine finds it, or -1.

    There is nothing to backtrack over: ``\\d+`` can only take its whole run of digits (a
    shorter run is followed by a digit, which no unit starts with); where the text says ``ms``
    the alternative ``m`` is followed by ``s``, a word character, so it can neither stop there
    nor repeat; and a repetition followed by another cannot stop (a digit is a word character).
    So the match is the whole chain of repetitions, if no word character follows it."""
    cdef Py_ssize_t d, e = i
    cdef Py_UCS4 c, c2
    while True:
        d = e
        while d < n and _digit(text[d]):
            d += 1
        if d == e or d >= n:
            break                   # no further repetition here
        c = text[d]
        c2 = text[d + 1] if d + 1 < n else 0
        if (c == u'n' or c == u'm') and c2 == u's':
            e = d + 2
        elif c == u'm' or c == u'u' or c == u'µ' or c == u's' or c == u'h' or c == u'd' or c == u'w':
            e = d + 1
        else:
            break
        if e >= n or not _digit(text[e]):
            break
    if e == i or (e < n and _word(text[e])):
        return -1
    return e


def shape_of(str text):
    """``(key, raws)``: the statement cache's shape key of ``text`` and its lifted literals."""
    cdef Py_ssize_t n = len(text), i = 0, last = 0, e, d
    cdef Py_UCS4 c, p
    cdef str kind
    parts = []
    raws = []
    while i < n:
        c = text[i]
        e = -1
        kind = None
        if c == u'"':
            e = _quoted(text, i, n, c)          # kept in the key as it is
        elif c == u"'":
            e = _quoted(text, i, n, c)
            kind = "\0s"
        elif c == u'.' or _digit(c):
            p = text[i - 1] if i > 0 else 0
            if i == 0 or not (_word(p) or p == u'.' or p == u'$'):
                if c != u'.':
                    e = _duration(text, i, n)
                    kind = "\0d"
                if e < 0:
                    d = i
                    while d < n and _digit(text[d]):
                        d += 1
                    if d < n and text[d] == u'.' and (d > i or (d + 1 < n and _digit(text[d + 1]))):
                        # \d+\.\d* (digits first) or \.\d+
                        e = d + 1
                        while e < n and _digit(text[e]):
                            e += 1
                        kind = "\0f"
                    elif d > i:
                        e = d
                        kind = "\0i"
        if e < 0:
            i += 1
            continue
        if kind is not None:
            parts.append(text[last:i])
            parts.append(kind)
            raws.append(text[i:e])
            last = e
        i = e
    if not raws:
        return text, raws
    parts.append(text[last:])
    return "".join(parts), raws


cdef int[13] _DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


cdef inline int _num(str s, Py_ssize_t a, Py_ssize_t k) noexcept:
    """The ASCII digits s[a:a+k] as a number, or -1 if one is not an ASCII digit."""
    cdef int v = 0
    cdef Py_ssize_t j
    cdef Py_UCS4 c
    for j in range(a, a + k):
        c = s[j]
        if c < u'0' or c > u'9':
            return -1
        v = v * 10 + (<int> c - 48)
    return v


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept:
    # Howard Hinnant's days_from_civil, as durations._days_from_civil (floor divisions: y >= -1)
    y -= m <= 2
    cdef int64_t era = (y if y >= 0 else y - 399) // 400
    cdef int64_t yoe = y - era * 400
    cdef int64_t doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def rfc3339_ns(str text):
    """int64 ns of an RFC3339 time literal in its common forms (ASCII digits), or None: then
    ``durations.parse_time`` gives the answer or the error."""
    cdef Py_ssize_t n = len(text), pos = 10, fd = 0, j
    cdef int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0, leap
    cdef int64_t frac = 0, seconds
    cdef Py_UCS4 c
    if n < 10 or text[4] != u'-' or text[7] != u'-':
        return None
    y, mo, d = _num(text, 0, 4), _num(text, 5, 2), _num(text, 8, 2)
    if y < 0 or mo < 0 or d < 0:
        return None
    if pos < n and (text[pos] == u'T' or text[pos] == u' '):
        if n < pos + 9 or text[pos + 3] != u':' or text[pos + 6] != u':':
            return None
        h, mi, sec = _num(text, pos + 1, 2), _num(text, pos + 4, 2), _num(text, pos + 7, 2)
        if h < 0 or mi < 0 or sec < 0:
            return None
        pos += 9
        if pos < n and text[pos] == u'.':
            pos += 1
            while pos < n and fd < 9 and u'0' <= text[pos] <= u'9':
                frac = frac * 10 + (<int64_t> text[pos] - 48)
                fd += 1
                pos += 1
            if fd == 0:
                return None
            for j in range(fd, 9):
                frac *= 10
        if pos < n:
            c = text[pos]
            if c == u'Z' or c == u'z':
                pos += 1
            elif c == u'+' or c == u'-':
                if n != pos + 6 or text[pos + 3] != u':':
                    return None
                oh, om = _num(text, pos + 1, 2), _num(text, pos + 4, 2)
                if oh < 0 or om < 0:
                    return None
                sign = -1 if c == u'-' else 1
                pos += 6
    if pos != n:
        return None          # anything else (an offset on a date alone included): parse_time
    leap = 1 if (mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 0
    if not (1 <= mo <= 12 and 1 <= d <= _DAYS[mo] + leap and h < 24 and mi < 60 and sec < 60):
        return None
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
    seconds -= sign * (oh * 3600 + om * 60)
    # int64 ns: -9223372036.854775808 s .. 9223372036.854775807 s
    if seconds > 9223372036 or seconds < -9223372037:
        return None
    if seconds == 9223372036 and frac > 854775807:
        return None
    if seconds == -9223372037 and frac < 145224192:
        return None
    return seconds * 1000000000 + frac
