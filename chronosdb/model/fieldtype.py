"""Field types and their one-byte codes.

The codes are part of the on-disk formats (WAL records, segment files): never renumber them.
"""
import enum

import numpy as np


class FieldType(enum.IntEnum):
    FLOAT = 1    # float64
    INTEGER = 2  # int64
    BOOLEAN = 3  # stored as uint8 0/1
    STRING = 4   # StringArray: int64 offsets + one bytes buffer

    @property
    def influx_name(self) -> str:
        """The name InfluxDB 1.x uses (SHOW FIELD KEYS, error messages)."""
        return _INFLUX_NAMES[self]

    @property
    def dtype(self):
        """numpy dtype of a values column of this type (None for strings)."""
        return _DTYPES[self]


_INFLUX_NAMES = {
    FieldType.FLOAT: "float",
    FieldType.INTEGER: "integer",
    FieldType.BOOLEAN: "boolean",
    FieldType.STRING: "string",
}

_DTYPES = {
    FieldType.FLOAT: np.dtype(np.float64),
    FieldType.INTEGER: np.dtype(np.int64),
    FieldType.BOOLEAN: np.dtype(np.uint8),
    FieldType.STRING: None,
}
