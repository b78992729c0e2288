# C-level declarations of the line-protocol parser (chronosdb/ext/lineproto.pyx): the helpers from
# include/lineproto.h, the per-line staging records and the parser's state. Nothing here is a
# Python object per line or per point; Python objects are made once per distinct series key, per
# column and per rejected line, after the scan.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef extern from "lineproto.h":
    ctypedef struct lp_buf:
        char* data             # malloc'd bytes
        Py_ssize_t len         # bytes in use
        Py_ssize_t cap         # bytes allocated

    int lp_reserve(lp_buf* b, Py_ssize_t extra) nogil
    int lp_append(lp_buf* b, const void* src, Py_ssize_t n) nogil
    void lp_free(lp_buf* b) nogil
    uint64_t lp_hash(const unsigned char* p, Py_ssize_t n, uint64_t seed) nogil
    int lp_is_ascii(const unsigned char* p, Py_ssize_t n) nogil
    int lp_valid_utf8(const unsigned char* p, Py_ssize_t n) nogil
    int lp_parse_int(const unsigned char* p, Py_ssize_t n, int64_t* out) nogil
    int lp_parse_float(const unsigned char* p, Py_ssize_t n, double* out) nogil
    int lp_mul_overflow(int64_t a, int64_t b, int64_t* out) nogil
    enum:
        LP_NUM_OK
        LP_NUM_INVALID
        LP_NUM_RANGE


# One tag of the line being parsed, unescaped (pointing into the body when the key region has no
# backslash, else into the per-line scratch buffer).
cdef struct Tag:
    const unsigned char* kp    # tag key
    Py_ssize_t kl
    const unsigned char* vp    # tag value
    Py_ssize_t vl


# One field value of the line being parsed, held until the whole line is known to be good.
cdef struct Slot:
    const unsigned char* kp    # field key, unescaped
    Py_ssize_t kl
    int ftype                  # chronosdb.model.fieldtype.FieldType code (1..4)
    double f                   # FLOAT value
    int64_t i                  # INTEGER value, or BOOLEAN 0/1
    const unsigned char* sp    # STRING value, still escaped (unescaped straight into its column)
    Py_ssize_t sl
    bint dead                  # a later field of the line has the same key: the later one wins


# One output column: all values of one (field key, field type), in write order.
cdef struct Column:
    Py_ssize_t name_off        # field key bytes in Parser.fkeys.arena
    Py_ssize_t name_len
    int ftype
    lp_buf series              # int32 index into the distinct series keys, per point
    lp_buf times               # int64 ns, per point
    lp_buf values              # float64 / int64 / uint8 per point; STRING: int64 end offsets
    lp_buf sdata               # STRING: the unescaped bytes of every value, concatenated


# Open-addressing hash table from byte strings to dense indexes 0..count-1 (first-seen order).
# The bytes live in `arena`; `spans` holds (offset, length) int64 pairs per index.
cdef struct Intern:
    uint64_t* hashes           # per slot: the full hash, compared before the bytes
    int32_t* slots             # per slot: index, or -1 when empty
    Py_ssize_t cap             # power of two; kept at most half full
    Py_ssize_t count
    lp_buf arena
    lp_buf spans


# A rejected line, turned into (line number, raw bytes, reason) once the scan is over.
cdef struct ErrRec:
    int64_t lineno             # 1-based physical line the logical line starts on
    Py_ssize_t start           # trimmed line in the body
    Py_ssize_t length
    int code                   # E_* in lineproto.pyx
    Py_ssize_t a               # code-specific detail (token offset / key size)
    Py_ssize_t b               # code-specific detail (token length)


cdef class Parser:
    cdef const unsigned char* body     # the request body (borrowed from the view held in parse())
    cdef Py_ssize_t n
    cdef int64_t mult                  # ns per timestamp unit
    cdef int64_t default_time          # ns, for lines without a timestamp
    cdef bint check_utf8               # False when the whole body is ASCII
    cdef bint oom                      # an allocation failed: raise MemoryError at the end
    cdef lp_buf tags                   # Tag records of the current line
    cdef lp_buf slots                  # Slot records of the current line
    cdef lp_buf scratch                # unescaped names and rebuilt key of the current line
    cdef lp_buf slot_col               # int32 per field position: its column on the last line
    cdef Intern series                 # canonical series key -> series index
    cdef Intern fkeys                  # field key + type code byte -> column index
    cdef lp_buf keytmp                 # builds the field intern key on a column-cache miss
    cdef lp_buf columns                # Column records, first-seen order
    cdef lp_buf errors                 # ErrRec records
    cdef Py_ssize_t n_lines            # lines committed as points
    # results of parse_line for the current line
    cdef const unsigned char* key_p    # canonical series key
    cdef Py_ssize_t key_l
    cdef int64_t time
    cdef Py_ssize_t err_a
    cdef Py_ssize_t err_b

    cdef void run(self) noexcept nogil
    cdef int parse_line(self, const unsigned char* L, Py_ssize_t m) noexcept nogil
    cdef int mark_duplicate_fields(self, Slot* slots, Py_ssize_t ns) noexcept nogil
    cdef int commit(self) noexcept nogil
