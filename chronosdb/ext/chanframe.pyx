# cython: language_level=3, boundscheck=False, wraparound=False
"""A forwarded batch's frame for the stream process, encoded in C, and a frame's pieces sent on
the channel from a writer's thread without letting go of the GIL.

``socket.sendmsg`` releases the GIL around the system call, as every blocking call must. The
channel's sends never block (``MSG_DONTWAIT``: a full buffer is the sender thread's business),
yet each release cost the writer a wait to take the GIL back behind whichever thread took it
meanwhile: measured in the server under load, a forwarded batch's ``sendmsg`` took ~56 us of
CPU and ~180 us of wall time, on the path of the write's reply. Holding the GIL for the call
(the copy into the socket buffer, tens of microseconds) is what any C kernel does.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cdef extern from "<sys/uio.h>":
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>":
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t sendmsg(int sockfd, const msghdr *msg, int flags)
    int MSG_DONTWAIT
    int MSG_NOSIGNAL

# Linux's IOV_MAX; a frame has three or four pieces per column.
cdef enum:
    MAX_PARTS = 1024


def send_nowait(int fd, parts) -> int:
    """Send the buffers ``parts`` (bytes, memoryviews, contiguous arrays), in order, as one
    gathered write on the stream socket ``fd`` without blocking and without releasing the GIL.
    Returns the number of bytes sent: all of them, a prefix (the buffer filled up, or more
    than 1024 pieces: the first 1024 at most), or 0 (it was full). Raises ``OSError`` for
    anything else (a closed channel)."""
    cdef Py_ssize_t n = len(parts), i, got = 0
    cdef Py_buffer *views
    cdef iovec *iov
    cdef msghdr msg
    cdef ssize_t sent
    cdef int err
    if n == 0:
        return 0
    n = min(n, MAX_PARTS)           # the rest is not sent: the caller sees a short count
    views = <Py_buffer *> malloc(n * sizeof(Py_buffer))
    iov = <iovec *> malloc(n * sizeof(iovec))
    if views == NULL or iov == NULL:
        free(views)
        free(iov)
        raise MemoryError()
    try:
        for i in range(n):
            PyObject_GetBuffer(parts[i], &views[i], PyBUF_SIMPLE)
            got += 1
            iov[i].iov_base = views[i].buf
            iov[i].iov_len = <size_t> views[i].len
        memset(&msg, 0, sizeof(msg))
        msg.msg_iov = iov
        msg.msg_iovlen = <size_t> n
        while True:
            sent = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL)
            if sent >= 0:
                return sent
            err = errno
            if err == EINTR:
                continue
            if err == EAGAIN:      # (EWOULDBLOCK on Linux)
                return 0
            raise OSError(err, __import__("os").strerror(err))
    finally:
        for i in range(got):
            PyBuffer_Release(&views[i])
        free(views)
        free(iov)


cdef inline char *_u32(char *p, unsigned long long v) noexcept:
    cdef int i
    for i in range(4):
        p[i] = <char> ((v >> (8 * i)) & 0xff)
    return p + 4


cdef inline char *_u64(char *p, unsigned long long v) noexcept:
    cdef int i
    for i in range(8):
        p[i] = <char> ((v >> (8 * i)) & 0xff)
    return p + 8


cdef inline char *_put(char *p, bytes b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    memcpy(p, PyBytes_AS_STRING(b), n)
    return p + n


_PADS = [b"\0" * i for i in range(8)]


def encode_batch_frame(bytes db, bytes rp, list keys, list columns, int string_type):
    """The pieces of a batch's ``N`` frame (see ``chronosdb.server.streamproc``): its head,
    meta and key list in one new bytes object, then each column's arrays as they are (not
    copied), each preceded by the zero bytes that put it at a multiple of 8 from the start
    of the frame's body. None when a column's type is ``string_type`` (such a batch goes
    pickled). ``columns``: objects with ``name`` (bytes), ``ftype`` (an int), ``series``,
    ``times`` and ``values`` (contiguous arrays)."""
    cdef Py_ssize_t nk = len(keys), nc = len(columns), i, meta_len, at
    cdef Py_ssize_t key_bytes = 0
    cdef bytes k, name, head
    cdef char *p
    cdef list names = []
    cdef list ftypes = []
    cdef list parts
    for c in columns:
        ft = int(c.ftype)
        if ft == string_type:
            return None
        ftypes.append(ft)
        names.append(<bytes> c.name)
    for k in keys:
        key_bytes += PyBytes_GET_SIZE(k)
    meta_len = 16 + PyBytes_GET_SIZE(db) + PyBytes_GET_SIZE(rp) + 4 * nk + key_bytes
    for name in names:
        meta_len += 13 + PyBytes_GET_SIZE(name)
    head = PyBytes_FromStringAndSize(NULL, 9 + meta_len)
    p = PyBytes_AS_STRING(head) + 4          # the frame's length: written at the end
    p[0] = b"N"
    p = _u32(p + 1, <unsigned long long> meta_len)
    p = _u32(p, <unsigned long long> PyBytes_GET_SIZE(db))
    p = _u32(p, <unsigned long long> PyBytes_GET_SIZE(rp))
    p = _u32(p, <unsigned long long> nk)
    p = _u32(p, <unsigned long long> nc)
    p = _put(p, db)
    p = _put(p, rp)
    for k in keys:
        p = _u32(p, <unsigned long long> PyBytes_GET_SIZE(k))
    for k in keys:
        p = _put(p, k)
    parts = [head]
    at = 4 + meta_len
    for i in range(nc):
        c = columns[i]
        name = names[i]
        p = _u32(p, <unsigned long long> PyBytes_GET_SIZE(name))
        p[0] = <char> (<int> ftypes[i])
        p = _u64(p + 1, <unsigned long long> len(c.times))
        p = _put(p, name)
        for a in (c.series, c.times, c.values):
            if at % 8:
                parts.append(_PADS[8 - at % 8])
                at += 8 - at % 8
            parts.append(a)
            at += a.nbytes
    _u32(PyBytes_AS_STRING(head), <unsigned long long> at)
    return parts
