"""The Wal: a directory of numbered segment files, appended to with group commit.

Layout: ``<dir>/00000001.wal``, ``00000002.wal``, ... (names from chronosdb.storage.filenames).
Only the highest-numbered segment is open for appending; older ones were fsynced when closed and
are never written again. Opening a Wal checks every segment (segment.scan_segment), truncates a
torn tail of the newest one, and always starts a fresh segment, so a torn tail can only ever sit
at the end of the newest segment of the previous run. Records are framed by segment.py; their
meaning is records.py's. docs/format/wal.md describes the bytes and the recovery rule.

Group commit: ``append`` frames its record in the caller's thread (lz4 + checksum, outside the
lock), then queues it under the lock with a ticket number. The first caller that finds nobody
writing becomes the flusher: it takes the whole queue, writes it with one ``write()`` per segment
and (fsync="always") one ``fsync()``, then wakes everyone whose ticket it covered. Callers that
queued during that I/O wait on the condition and the next flusher takes all of them at once, so
the number of fsyncs follows the disk's speed, not the number of writers.

Every other state change that touches the file (roll-over, ``rotate``, ``close``) is done by
whoever holds the flusher role, so at most one thread ever writes or switches segments.
"""
from __future__ import annotations

import os
import threading
from typing import Iterator

from chronosdb.model.errors import CorruptionError
from chronosdb.storage import filenames
from chronosdb.storage.wal import records, segment

FSYNC_MODES = ("always", "batch", "none")

# The fsync the Wal calls; a module attribute so tests can model a slow disk.
_fsync = os.fsync


class Wal:
    def __init__(
        self,
        directory: str,
        fsync: str = "always",
        segment_bytes: int = 64 << 20,
        batch_interval: float = 0.1,
    ):
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        if not isinstance(segment_bytes, int) or segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be a positive int, got {segment_bytes!r}")
        if not batch_interval > 0:
            raise ValueError(f"batch_interval must be > 0 seconds, got {batch_interval!r}")
        self.directory = str(directory)
        self.fsync_mode = fsync
        self.segment_bytes = segment_bytes
        self.batch_interval = float(batch_interval)

        self._cond = threading.Condition(threading.Lock())
        self._fsyncs = 0
        # (seq, offset, reason) when open truncated a torn tail; for the engine to log.
        self.truncated_tail: tuple[int, int, str] | None = None

        os.makedirs(self.directory, exist_ok=True)
        filenames.remove_temp_files(self.directory)
        self._sizes: dict[int, int] = {}  # closed segments: seq -> bytes
        existing = self._list_segments()
        for i, seq in enumerate(existing):
            self._sizes[seq] = self._recover_segment(seq, last=(i == len(existing) - 1))

        # File state, changed only by the flusher (and by the syncer's fd dup, under the lock).
        first = (existing[-1] + 1) if existing else 1
        self._fd = -1
        self._file_seq = 0
        self._file_size = 0
        self._open_segment(first)

        # Queue state, under self._cond.
        self._assigned_seq = first   # segment the next queued record goes to
        self._assigned_size = 0      # bytes queued or written to that segment
        self._pending: list[tuple[int, bytes]] = []  # (seq, frame) waiting for a flusher
        self._ticket = 0             # ticket of the last queued record
        self._done_ticket = 0        # every ticket <= this is written (and fsynced if "always")
        self._synced_ticket = 0      # every ticket <= this is fsynced ("batch" bookkeeping)
        self._flushing = False
        self._closed = False
        self._error: BaseException | None = None

        self._stop = threading.Event()
        self._syncer = None
        if fsync == "batch":
            self._syncer = threading.Thread(target=self._sync_loop, name="wal-batch-fsync", daemon=True)
            self._syncer.start()

    # ---- opening ----------------------------------------------------------------------------

    def _list_segments(self) -> list[int]:
        seqs = []
        for name in os.listdir(self.directory):
            m = filenames.WAL_SEGMENT_RE.match(name)
            if m:
                seqs.append(int(m.group(1)))
        return sorted(seqs)

    def _path(self, seq: int) -> str:
        return os.path.join(self.directory, filenames.wal_segment(seq))

    def _recover_segment(self, seq: int, last: bool) -> int:
        """Verify one segment; truncate a torn tail if it is the last. Returns its valid size."""
        path = self._path(seq)
        with open(path, "rb") as f:
            data = f.read()
        scan = segment.scan_segment(data, path, tail_may_be_torn=last)
        if scan.torn:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, scan.valid_length)
                self._do_fsync(fd)
            finally:
                os.close(fd)
            self.truncated_tail = (seq, scan.valid_length, scan.torn_reason)
        return scan.valid_length

    def _open_segment(self, seq: int) -> None:
        """Create segment ``seq`` and make it the append target (caller fsynced the old one)."""
        fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            # The new name must be durable before records in it are acknowledged.
            filenames.fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            raise
        with self._cond:
            self._fsyncs += 1
            old_fd, old_seq, old_size = self._fd, self._file_seq, self._file_size
            self._fd, self._file_seq, self._file_size = fd, seq, 0
            if old_fd >= 0:
                self._sizes[old_seq] = old_size
        if old_fd >= 0:
            os.close(old_fd)

    def _do_fsync(self, fd: int) -> None:
        _fsync(fd)
        with self._cond:
            self._fsyncs += 1

    # ---- appending --------------------------------------------------------------------------

    def append(self, record_type: int, payload: bytes) -> int:
        """Log one record; returns the segment number it landed in.

        Returns once the record is fsynced (fsync="always") or written ("batch", "none"), sharing
        that write and fsync with every other thread appending at the same time.
        """
        return self._append(record_type, payload)[0]

    def append_ordinal(self, record_type: int, payload: bytes) -> int:
        """Like ``append``, but returns the record's ordinal: 1 for the first record appended
        since this Wal was opened, then 2, 3, ... in exactly the order of the log, whatever
        order the concurrent callers return in. The engine applies writes to its cache in this
        order, so what it serves before a crash is what replay rebuilds after one."""
        return self._append(record_type, payload)[1]

    def _append(self, record_type: int, payload: bytes) -> tuple[int, int]:
        frame = segment.frame_record(record_type, payload)
        with self._cond:
            self._check_usable()
            if self._assigned_size and self._assigned_size + len(frame) > self.segment_bytes:
                self._assigned_seq += 1   # roll over: the flusher switches files at this record
                self._assigned_size = 0
            self._assigned_size += len(frame)
            seq = self._assigned_seq
            self._pending.append((seq, frame))
            self._ticket += 1
            mine = self._ticket
            while self._done_ticket < mine:
                self._check_failed()
                if self._flushing:
                    self._cond.wait()
                else:
                    self._flush_locked(final_fsync=self.fsync_mode == "always")
            return seq, mine

    def append_batch(self, batch) -> int:
        rtype, payload = records.encode_record(batch)
        return self.append(rtype, payload)

    def append_delete(self, rec) -> int:
        if not isinstance(rec, records.DeleteRecord):
            raise TypeError(f"expected a DeleteRecord, got {type(rec).__name__}")
        rtype, payload = records.encode_record(rec)
        return self.append(rtype, payload)

    def _check_failed(self) -> None:
        if self._error is not None:
            raise OSError(f"WAL {self.directory} stopped after a failed write or fsync: {self._error}")

    def _check_usable(self) -> None:
        if self._closed:
            raise ValueError(f"WAL {self.directory} is closed")
        self._check_failed()

    def _flush_locked(self, final_fsync: bool, then_open: int | None = None, then_close: bool = False) -> None:
        """Take the flusher role, write everything queued, then optionally switch/close the file.

        Called with the lock held and nobody flushing; releases it for the I/O. ``then_open``
        fsyncs the current segment and opens segment ``then_open`` after the writes (rotate);
        ``then_close`` fsyncs and closes it (close).
        """
        items, last = self._pending, self._ticket
        self._pending = []
        self._flushing = True
        self._cond.release()
        err = None
        try:
            self._write_items(items, final_fsync)
            if then_open is not None:
                self._do_fsync(self._fd)
                self._open_segment(then_open)
            elif then_close:
                self._do_fsync(self._fd)
        except BaseException as e:
            err = e
        finally:
            self._cond.acquire()
            self._flushing = False
            if err is None:
                self._done_ticket = last
            elif self._error is None:
                self._error = err
            self._cond.notify_all()
        if err is not None:
            raise err

    def _write_items(self, items: list[tuple[int, bytes]], final_fsync: bool) -> None:
        i = 0
        wrote = False
        while i < len(items):
            seq = items[i][0]
            j = i
            while j < len(items) and items[j][0] == seq:
                j += 1
            if seq != self._file_seq:
                # Roll-over. Fsync the full segment first in every mode, so a torn tail can
                # only ever be in the newest segment (the recovery rule depends on it).
                self._do_fsync(self._fd)
                self._open_segment(seq)
            data = b"".join(f for _, f in items[i:j])
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            with self._cond:
                self._file_size += len(data)
            wrote = True
            i = j
        if final_fsync and wrote:
            self._do_fsync(self._fd)

    # ---- batch-mode background fsync -------------------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.batch_interval):
            try:
                self._sync_once()
            except OSError:
                return  # recorded in self._error; appends now fail

    def _sync_once(self) -> None:
        with self._cond:
            if self._closed or self._error is not None or self._done_ticket <= self._synced_ticket:
                return
            target = self._done_ticket
            # A dup stays valid even if the flusher switches segments meanwhile; the segment it
            # switches away from is fsynced by the switch, so `target` is durable either way.
            fd = os.dup(self._fd)
        try:
            self._do_fsync(fd)
        except OSError as e:
            with self._cond:
                if self._error is None:
                    self._error = e
                self._cond.notify_all()
            raise
        finally:
            os.close(fd)
        with self._cond:
            self._synced_ticket = max(self._synced_ticket, target)

    # ---- segments ---------------------------------------------------------------------------

    def _become_flusher(self) -> None:
        """Wait (lock held) until no flush runs; the caller then holds the role via _flush_locked."""
        while self._flushing:
            self._cond.wait()
        self._check_usable()

    def rotate(self) -> int:
        """Fsync and close the current segment, start the next; returns the closed segment's seq."""
        with self._cond:
            self._become_flusher()
            closed = self._assigned_seq
            self._assigned_seq += 1
            self._assigned_size = 0
            self._flush_locked(final_fsync=False, then_open=closed + 1)
            return closed

    def remove_through(self, seq: int) -> None:
        """Delete every segment numbered <= seq (their data must already be in segment files)."""
        with self._cond:
            self._check_usable()
            if seq >= self._assigned_seq or seq >= self._file_seq:
                raise ValueError(
                    f"cannot remove WAL segments through {seq}: segment {self._file_seq} is open; rotate() first"
                )
            doomed = [s for s in self._sizes if s <= seq]
            for s in doomed:
                del self._sizes[s]
        removed = False
        for s in sorted(doomed):
            try:
                os.unlink(self._path(s))
                removed = True
            except FileNotFoundError:
                pass
        if removed:
            filenames.fsync_dir(self.directory)
            with self._cond:
                self._fsyncs += 1

    def segments(self) -> list[int]:
        with self._cond:
            return sorted(set(self._sizes) | {self._file_seq})

    @property
    def current_seq(self) -> int:
        """The segment the next append goes to (unless it rolls over)."""
        with self._cond:
            return self._assigned_seq

    @property
    def fsync_count(self) -> int:
        with self._cond:
            return self._fsyncs

    def size_bytes(self) -> int:
        """Bytes written to all live segments (including not yet fsynced ones)."""
        with self._cond:
            return sum(self._sizes.values()) + self._file_size

    # ---- reading ----------------------------------------------------------------------------

    def _frames(self) -> Iterator[tuple[int, str, segment.Frame]]:
        with self._cond:
            sizes = dict(self._sizes)
            sizes[self._file_seq] = self._file_size
        for seq, size in sorted(sizes.items()):
            path = self._path(seq)
            try:
                with open(path, "rb") as f:
                    data = f.read(size)
            except FileNotFoundError:
                continue  # removed by remove_through while we were reading older ones
            if len(data) < size:
                raise CorruptionError(path, len(data), f"segment is shorter than the {size} bytes written")
            for frame in segment.scan_segment(data, path, tail_may_be_torn=False).frames:
                yield seq, path, frame

    def replay(self) -> Iterator[tuple[int, int, bytes]]:
        """(segment seq, record type, payload) of every record, oldest first."""
        for seq, path, frame in self._frames():
            yield seq, frame.record_type, frame.payload(path)

    def replay_records(self) -> Iterator[tuple[int, object]]:
        """(segment seq, WriteBatch | DeleteRecord) of every record, oldest first."""
        for seq, path, frame in self._frames():
            try:
                value = records.decode_record(frame.record_type, frame.payload(path))
            except ValueError as e:
                raise CorruptionError(path, frame.offset, str(e)) from e
            yield seq, value

    # ---- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, fsync the current segment (in every mode) and stop."""
        with self._cond:
            if self._closed:
                return
            while self._flushing:
                self._cond.wait()
            try:
                if self._error is None:
                    self._flush_locked(final_fsync=False, then_close=True)
            finally:
                self._closed = True
                fd, self._fd = self._fd, -1
                self._sizes[self._file_seq] = self._file_size
                self._cond.notify_all()
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "Wal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Wal({self.directory!r}, fsync={self.fsync_mode!r}, current_seq={self._assigned_seq})"
