# Shared declarations of the aggregate kernels (aggregates.pyx). The kernels themselves are def
# functions over typed memoryviews (Python callers: see aggregates.pyi); what other Cython
# modules share is the value type they are generic over.
from libc.stdint cimport int64_t, uint8_t

# A value column: float64 (FLOAT), int64 (INTEGER) or uint8 0/1 (BOOLEAN). Strings never reach
# a numeric kernel: they are ranked first (strings_to_fixed + numpy unique) and passed as int64.
ctypedef fused num_t:
    double
    int64_t
    uint8_t
