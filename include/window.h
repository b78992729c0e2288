/* window.h - GROUP BY time() window edges, shared by the merge and aggregate kernels.
 *
 * chronos_window_edge: start + i*every for i >= 0 and every > 0. Returns 1 (and leaves *out
 * unset) when the edge lies above INT64_MAX: then every time in a column is below it. It can
 * never fall below INT64_MIN because i*every >= 0. 128-bit arithmetic: i*every alone may pass
 * INT64_MAX while start + i*every does not (a negative start); i < 2^63 and every < 2^63, so the
 * product fits in 126 bits.
 */
#ifndef CHRONOSDB_WINDOW_H
#define CHRONOSDB_WINDOW_H

#include <stdint.h>

static inline int chronos_window_edge(int64_t start, int64_t every, int64_t i, int64_t *out) {
    __int128 edge = (__int128)start + (__int128)i * (__int128)every;
    if (edge > (__int128)INT64_MAX) return 1;
    *out = (int64_t)edge;
    return 0;
}

#endif
