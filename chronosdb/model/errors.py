"""Errors that know their HTTP status and message (rendered once, at the server's edge)."""


class ChronosError(Exception):
    """Base class. ``status`` is the HTTP status the server answers with."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ChronosError):
    status = 400


class NotFound(ChronosError):
    status = 404


class DatabaseNotFound(NotFound):
    def __init__(self, name: str):
        super().__init__(f'database not found: "{name}"')
        self.database = name


class RetentionPolicyNotFound(NotFound):
    def __init__(self, db: str, rp: str):
        super().__init__(f'retention policy not found: "{rp}" on database "{db}"')


class FieldTypeConflict(BadRequest):
    """A write gave a field a type other than the one its shard already holds."""

    def __init__(self, measurement: bytes, field: bytes, got, existing):
        m = measurement.decode(errors="replace")
        f = field.decode(errors="replace")
        super().__init__(
            f'field type conflict: input field "{f}" on measurement "{m}" is type '
            f"{got.influx_name}, already exists as type {existing.influx_name}"
        )
        self.measurement, self.field, self.got, self.existing = measurement, field, got, existing


class CorruptionError(ChronosError):
    """Stored bytes failed a check. Always names the file and the byte offset."""

    def __init__(self, path, offset: int, what: str):
        super().__init__(f"corruption in {path} at offset {offset}: {what}")
        self.path, self.offset, self.what = str(path), offset, what


class BackPressure(ChronosError):
    status = 503
