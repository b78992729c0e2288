"""Type stubs for chronosdb.ext.aggregates (semantics: see aggregates.pyx; twins: aggregates_ref.py).

``values`` is a contiguous float64, int64 or uint8 array; ``bounds`` holds nwin+1 int64 row
positions (window i = rows bounds[i]:bounds[i+1]), as chronosdb.ext.merge.window_bounds returns.
"""
import numpy as np
import numpy.typing as npt

def window_sum(values: npt.NDArray, bounds: npt.NDArray[np.int64]) -> npt.NDArray:
    """float64 sums for floats; wrapping int64 sums for ints."""

def window_select(values: npt.NDArray, bounds: npt.NDArray[np.int64], want_max: bool) -> npt.NDArray[np.int64]:
    """Row of each window's min/max (earliest on ties, NaN loses), -1 when empty."""

def window_calls(times: npt.NDArray[np.int64], values: npt.NDArray, start: int, every: int, nwin: int, codes: list[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, list[npt.NDArray]]: ...
def window_cells(values: npt.NDArray, bounds: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray, npt.NDArray, npt.NDArray, npt.NDArray, npt.NDArray]:
    """(count, sum, min, max, first, last) per window in one pass; empty windows hold 0."""

def window_moments(values: npt.NDArray, bounds: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(mean, sum of squared deviations) per window."""

def window_integral(times: npt.NDArray[np.int64], values: npt.NDArray, bounds: npt.NDArray[np.int64], unit: int) -> npt.NDArray[np.float64]:
    """Trapezoid area inside each window in value*unit."""

def group_mode(values: npt.NDArray, times: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Row of each group's mode (InfluxDB 1.x tie rule) over rows sorted by (group, value, time)."""

def derivative(times: npt.NDArray[np.int64], values: npt.NDArray, unit: int) -> npt.NDArray[np.float64]: ...
def difference(values: npt.NDArray) -> npt.NDArray: ...
def moving_average(values: npt.NDArray, window: int) -> npt.NDArray[np.float64]: ...
def cumulative_sum(values: npt.NDArray) -> npt.NDArray: ...
def elapsed(times: npt.NDArray[np.int64], unit: int) -> npt.NDArray[np.int64]: ...
def strings_to_fixed(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]: ...
def sample_keys(times: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.uint64]: ...
