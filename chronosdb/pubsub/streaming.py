"""A streaming SELECT: what it may be, which live rows a published batch gives, which windows
are due, and the resume cursor. Pure: no sockets, no clock of its own (``now`` is passed in).

Two kinds of stream (``StreamPlan.kind``):

* ``"raw"`` — ``SELECT <fields, tags or *> FROM <one measurement or /regex/> [WHERE ...]
  [GROUP BY <tags>]``. Each published batch is turned into rows here: points of one series at
  one time merge into one row (last write in the batch wins per field, as in storage), the
  WHERE clause's time range and residual (field comparisons) are evaluated with
  ``condition.eval_residual`` over the rows of each distinct series (numpy, one call per
  series, not per point), and rows are grouped into InfluxDB-shaped series, time-ordered.

  Shared work. A published batch's rows, sorted by series then time, are built **once** for all
  its subscribers (``shared_rows``, kept on the bus's ``SharedBatch``); a subscriber's part is
  the contiguous slices of its keys. Tag dicts are decoded once per key (``_key_tags``, an
  ``lru_cache``). ``raw_series_many`` formats several queued batches as one event: streams of
  one series per batch concatenate their slices; others slice the rows of all the batches taken
  combined (``combined_rows``: built once per set of batches, shared by every stream that took
  the same set at a pace tick). ``merge_series`` (per-batch series merged per series) is the
  plain reference it is tested against.
* ``"window"`` — any SELECT with ``GROUP BY time(interval[, offset])``. Live points only mark
  their windows dirty (one ``np.unique`` per batch); when the server clock passes a dirty
  window's end plus ``grace``, the statement is **re-run by the ordinary executor** over exactly
  that window. Re-querying costs one small query per window and subscriber, but is exact (late
  points within the grace, every function and fill the executor supports, the same answer /query
  gives) and needs no second aggregate implementation.

Cursor (SSE ``id``). Raw streams: the largest point time (ns) delivered so far on the stream, as
a decimal string; it never decreases. A client resuming with ``Last-Event-ID: T`` gets, from
storage, every matching point with time > T, then the live stream. Window streams: the start of
the last window delivered; a resume re-runs the windows after it that have closed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chronosdb.ext.merge import group_points
from chronosdb.model.batch import WriteBatch
from chronosdb.model.errors import BadRequest
from chronosdb.model.fieldtype import FieldType
from chronosdb.model.strings import StringArray
from chronosdb.model.serieskey import parse_key
from chronosdb.pubsub.matcher import KeyIndex, KeyInfo, MatchedBatch, SubscriptionFilter, match_keys
from chronosdb.query import condition as cond_mod
from chronosdb.query.influxql import ast
from chronosdb.query.results import Column, Series

# How long after a window's end its row is computed: points stamped inside the window that
# arrive this much late are still counted. Loopback writers land within milliseconds; a second
# covers clients batching their writes, at the price of a second's delay per window.
DEFAULT_GRACE_NS = 1_000_000_000


class Unsupported(BadRequest):
    def __init__(self, what: str):
        super().__init__(f"unsupported for streaming: {what}")


@dataclass
class StreamPlan:
    stmt: ast.SelectStatement
    db: str
    rp: str | None
    kind: str                                   # "raw" | "window"
    filter: SubscriptionFilter
    cond: cond_mod.Condition
    interval: int = 0                           # window streams: GROUP BY time interval, ns
    offset: int = 0                             # and its offset
    group_tags: tuple = ()                      # raw streams: GROUP BY tag keys
    wildcard: bool = False                      # raw: SELECT *
    projection: tuple = ()                      # raw: (column name, source name, type hint)


def _time_dimension(d) -> tuple[int, int] | None:
    if isinstance(d, ast.Call) and d.name.lower() == "time":
        if not d.args or not isinstance(d.args[0], ast.DurationLiteral) or d.args[0].ns <= 0:
            raise BadRequest("GROUP BY time() needs a positive duration")
        off = 0
        if len(d.args) > 1:
            if not isinstance(d.args[1], ast.DurationLiteral):
                raise Unsupported("a GROUP BY time() offset other than a duration")
            off = d.args[1].ns
        return d.args[0].ns, off
    return None


def compile_stream(stmts: list, db: str, rp: str | None, field_names, now: int) -> StreamPlan:
    """Validate a parsed query for streaming and plan it. ``field_names(measurement bytes)``
    gives the measurement's known field names (to tell tags from fields in WHERE)."""
    if len(stmts) != 1:
        raise BadRequest(f"a stream takes exactly one SELECT statement, got {len(stmts)}")
    stmt = stmts[0]
    if not isinstance(stmt, ast.SelectStatement):
        raise BadRequest("a stream takes a SELECT statement")
    if stmt.into is not None:
        raise Unsupported("SELECT ... INTO")
    if len(stmt.sources) != 1 or not isinstance(stmt.sources[0], ast.Measurement):
        raise Unsupported("a FROM clause other than one measurement or one /regex/")
    src = stmt.sources[0]
    if src.database is not None and src.database != db:
        raise Unsupported(f'a measurement of another database ("{src.database}")')
    if stmt.order_desc:
        raise Unsupported("ORDER BY time DESC")
    if stmt.limit or stmt.offset or stmt.slimit or stmt.soffset:
        raise Unsupported("LIMIT, OFFSET, SLIMIT or SOFFSET")
    rp = src.retention_policy or rp
    interval = offset = 0
    group_tags = []
    for d in stmt.dimensions:
        t = _time_dimension(d)
        if t is not None:
            interval, offset = t
        elif isinstance(d, ast.VarRef):
            group_tags.append(d.name)
        else:
            raise Unsupported("GROUP BY * or GROUP BY /regex/")
    meas = src.name.encode() if src.name is not None else None
    fields = set(field_names(meas)) if meas is not None else set()
    cond = cond_mod.analyze(stmt.condition, now=now, is_tag=lambda name: name not in fields)
    flt = SubscriptionFilter(db, rp, meas, src.regex, cond.tags)
    if interval:
        return StreamPlan(stmt, db, rp, "window", flt, cond, interval=interval, offset=offset)
    projection, wildcard = [], False
    for f in stmt.fields:
        e = f.expr
        if isinstance(e, ast.Wildcard):
            if e.type_hint is not None:
                raise Unsupported("SELECT *::field or *::tag")
            wildcard = True
        elif isinstance(e, ast.VarRef):
            if e.name.lower() == "time":
                continue
            projection.append((f.alias or e.name, e.name, e.type_hint))
        elif isinstance(e, ast.Call):
            raise Unsupported(f"{e.name}() without GROUP BY time(...): an aggregate over a "
                              f"stream needs windows")
        else:
            raise Unsupported("expressions in the SELECT list of a raw stream (select fields, "
                              "tags or *)")
    if wildcard and projection:
        raise Unsupported("* mixed with named columns")
    return StreamPlan(stmt, db, rp, "raw", flt, cond, group_tags=tuple(group_tags),
                      wildcard=wildcard, projection=tuple(projection))


# --- re-running the statement over a time range ---------------------------------------------

def bounded(stmt: ast.SelectStatement, after: int | None = None, start: int | None = None,
            end: int | None = None) -> ast.SelectStatement:
    """The statement with ``time > after``, ``time >= start`` and/or ``time < end`` ANDed in."""
    extra = []
    t = ast.VarRef("time")
    if after is not None:
        extra.append(ast.BinaryExpr(">", t, ast.IntegerLiteral(after)))
    if start is not None:
        extra.append(ast.BinaryExpr(">=", t, ast.IntegerLiteral(start)))
    if end is not None:
        extra.append(ast.BinaryExpr("<", t, ast.IntegerLiteral(end)))
    c = stmt.condition
    for e in extra:
        c = e if c is None else ast.BinaryExpr("AND", c, e)
    return dataclasses.replace(stmt, condition=c)


def max_time(series: list[Series]) -> int | None:
    m = None
    for s in series:
        if s.times is not None and len(s.times):
            v = int(s.times.max())
            m = v if m is None else max(m, v)
    return m


# --- windows ---------------------------------------------------------------------------------

class WindowTracker:
    """Which windows received points and when they close (server clock + grace)."""

    def __init__(self, interval: int, offset: int, grace: int = DEFAULT_GRACE_NS):
        self.interval, self.offset, self.grace = interval, offset, grace
        self.dirty: set[int] = set()

    def start_of(self, t):
        return (t - self.offset) // self.interval * self.interval + self.offset

    def touch_times(self, times: np.ndarray) -> None:
        if len(times):
            self.dirty.update(np.unique(self.start_of(times)).tolist())

    def touch_batch(self, batch: WriteBatch) -> None:
        for c in batch.columns:
            self.touch_times(c.times)

    def due(self, now: int) -> list[int]:
        """Windows whose end + grace has passed, oldest first; they leave the dirty set."""
        out = sorted(s for s in self.dirty if s + self.interval + self.grace <= now)
        self.dirty.difference_update(out)
        return out

    def next_deadline(self) -> int | None:
        return min(self.dirty) + self.interval + self.grace if self.dirty else None

    def open_windows(self, now: int) -> list[int]:
        return sorted(s for s in self.dirty if s + self.interval > now)


# --- raw rows from a published batch ---------------------------------------------------------

_KINDS = {FieldType.FLOAT: "float", FieldType.INTEGER: "integer", FieldType.BOOLEAN: "boolean",
          FieldType.STRING: "string"}


def _last_per_row(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For point->row indices in write order: (distinct rows, index of each row's last point)."""
    rev = rows[::-1]
    uniq, first_rev = np.unique(rev, return_index=True)
    return uniq, len(rows) - 1 - first_rev


def _take(values, idx: np.ndarray):
    return values.take(idx) if isinstance(values, StringArray) else values[idx]


class _Rows:
    """The rows (series, time) of one measurement's points in a batch, with per-row fields."""

    def __init__(self, batch: WriteBatch):
        cols = batch.columns
        S = np.concatenate([c.series for c in cols])
        T = np.concatenate([c.times for c in cols])
        order = np.lexsort((T, S))
        s, t = S[order], T[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        row_sorted = np.cumsum(new) - 1
        row_of_point = np.empty(len(order), dtype=np.int64)
        row_of_point[order] = row_sorted
        self.series = s[new]
        self.times = t[new]
        n = self.n = len(self.times)
        self.fields: dict[str, tuple] = {}     # name -> (values per row, valid, kind)
        off = 0
        for c in cols:
            rows = row_of_point[off:off + len(c)]
            off += len(c)
            uniq, src = _last_per_row(rows)
            valid = np.zeros(n, dtype=bool)
            valid[uniq] = True
            if isinstance(c.values, StringArray):
                idx = np.zeros(n, dtype=np.int64)
                idx[uniq] = src
                vals = c.values.take(idx)
            else:
                vals = np.zeros(n, dtype=c.values.dtype)
                vals[uniq] = c.values[src]
            name = c.name.decode("utf-8", "replace")
            if name in self.fields:      # same name, another type: keep the first (storage refuses it)
                continue
            self.fields[name] = (vals, valid, _KINDS[c.ftype])


class _BatchRows(_Rows):
    """``_Rows`` of a whole batch plus, per key, the [start, end) of its rows (rows are sorted
    by series then time, so each key's rows are contiguous)."""

    def __init__(self, batch: WriteBatch):
        super().__init__(batch)
        ks = np.arange(len(batch.keys))
        self.key_start = np.searchsorted(self.series, ks, "left")
        self.key_end = np.searchsorted(self.series, ks, "right")


def shared_rows(shared) -> _BatchRows:
    """The rows of a published batch, built once for all its subscribers (``SharedBatch.memo``)."""
    return shared.memo("rows", lambda: _BatchRows(shared.batch))


@lru_cache(maxsize=65536)
def _key_tags(key: bytes) -> dict[str, str]:
    """A series key's tags decoded to str, once per key (read-only: shared by every caller)."""
    _m, tags = parse_key(key)
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in tags}


def _ranges(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The concatenation of arange(start[i], end[i]) for every i, in one numpy pass."""
    lens = end - start
    total = int(lens.sum())
    if len(start) == 1:
        return np.arange(int(start[0]), int(end[0]))
    offs = np.cumsum(lens) - lens
    return np.repeat(start - offs, lens) + np.arange(total)


def _rows_of(batch, keys: KeyInfo):
    """``(rows, infos, key_idx)`` of a published batch: its rows grouped by series key, each
    key's (measurement, tags) info, and the keys that have rows. A ``MatchedBatch`` from the bus
    brings them built once for every subscriber (``shared_rows``)."""
    if isinstance(batch, MatchedBatch):
        return shared_rows(batch.shared), batch.shared.infos, batch.key_idx
    rows = _BatchRows(batch)
    return rows, [keys.get(k) for k in batch.keys], np.flatnonzero(rows.key_end > rows.key_start)


def raw_series(plan: StreamPlan, batch: WriteBatch, keys: KeyInfo, after: int | None = None) -> list[Series]:
    """The InfluxDB-shaped series a raw stream sends for one published (already matched) batch:
    rows with time in the WHERE range, > ``after`` if given, passing the residual; grouped by
    measurement and GROUP BY tags; each series in time order.

    A ``MatchedBatch`` from the bus is not cut or sorted here: its rows are slices of the
    published batch's rows, which are built once for every subscriber (``shared_rows``)."""
    rows, infos, key_idx = _rows_of(batch, keys)
    by_meas: dict[bytes, list[int]] = {}
    for k in key_idx.tolist():
        by_meas.setdefault(infos[k][0], []).append(k)
    out: list[Series] = []
    for meas in sorted(by_meas):
        ks = np.array(by_meas[meas], dtype=np.int64)
        sel = _ranges(rows.key_start[ks], rows.key_end[ks])
        if not len(sel):
            continue
        out.extend(_measurement_series(plan, rows, sel, batch.keys, infos, meas))
    return [s for s in (_after(s, after) for s in out) if s is not None]


class _MergedRows:
    """The rows of several batches' parts as one row set (what ``_measurement_series`` reads):
    ``series`` indexes a key list common to all parts, ``fields`` holds one column per field
    name over all rows. Rows are not merged across batches (each batch's rows stay rows)."""

    def __init__(self, series, times, fields, key_spans=None):
        self._series, self.times, self.fields = series, times, fields
        self._key_spans = key_spans
        self.n = len(times)

    @property
    def series(self) -> np.ndarray:
        """The common key id of each row; rows grouped by key (``_Combined._group``) give it
        from each key's [start, end) when first asked (the one-series events never ask)."""
        if self._series is None:
            start, end = self._key_spans
            self._series = np.repeat(np.arange(len(start), dtype=np.int64), end - start)
        return self._series


def _merge_fields(cols: dict, n: int) -> dict:
    """name -> [(row offset, values, valid, kind)] pieces as full-length field columns."""
    fields = {}
    for name, pieces in cols.items():
        kind = pieces[0][3]
        pieces = [p for p in pieces if p[3] == kind]   # another type under one name: keep the first
        valid = np.zeros(n, dtype=bool)
        if kind == "string":
            chunks, at = [], 0
            for off, v, va, _k in pieces:
                if off > at:
                    chunks.append(StringArray.from_list([""] * (off - at)))
                chunks.append(v)
                at = off + len(v)
                valid[off:at] = va
            if at < n:
                chunks.append(StringArray.from_list([""] * (n - at)))
            vals = StringArray.concat(chunks)
        else:
            vals = np.zeros(n, dtype=pieces[0][1].dtype)
            for off, v, va, _k in pieces:
                vals[off:off + len(v)] = v
                valid[off:off + len(v)] = va
        fields[name] = (vals, valid, kind)
    return fields


class _Combined:
    """The rows of several published batches as one row set sorted by (series, time), with a
    key list common to them (``gid_of[i]``: batch i's key index -> common key id) and each
    common key's [start, end) of rows. Built once per set of batches (``combined_rows``) and
    shared by every stream that took that set at one tick; ``wanted`` gives a filter's keys
    among them (once per filter, however many batches were combined)."""

    def __init__(self, shareds: tuple):
        gid: dict[bytes, int] = {}
        self.key_list: list[bytes] = []
        self.info_list: list = []
        self.gid_of = []
        by_keys: dict[tuple, np.ndarray] = {}     # writers repeat their key lists: map each once
        for sh in shareds:
            kt = tuple(sh.batch.keys)
            ids = by_keys.get(kt)
            if ids is None:
                ids = np.empty(len(kt), dtype=np.int64)
                for i, key in enumerate(kt):
                    g = gid.get(key)
                    if g is None:
                        g = gid[key] = len(self.key_list)
                        self.key_list.append(key)
                        self.info_list.append(sh.infos[i])
                    ids[i] = g
                by_keys[kt] = ids
            self.gid_of.append(ids)
        if not self._group(shareds):
            self._sort(shareds)
        self._index = KeyIndex(self.info_list)
        self._wanted: dict = {}
        self.tag_keys: dict[bytes, list[str]] = {}

    def _group(self, shareds) -> bool:
        """The rows straight from the batches' points, grouped by series and time in C
        (``merge.group_points``: a counting sort, then a merge sort of the series out of time
        order), when that gives the rows ``_sort`` would: in every batch each column has the
        points of the first (the same series and times: every line carried every field), no
        string fields, and no series with one time twice in one batch (points to merge; the
        kernel tells). False otherwise: nothing was set."""
        G, T, B, cols, n = [], [], [], {}, 0
        for i, sh in enumerate(shareds):
            columns = sh.batch.columns
            if not columns:
                continue
            c0 = columns[0]
            seen = set()
            for c in columns:
                if c.ftype is FieldType.STRING:
                    return False
                if c is not c0 and not (np.array_equal(c.series, c0.series) and np.array_equal(c.times, c0.times)):
                    return False
                name = c.name.decode("utf-8", "replace")
                if name in seen:            # one name, two types in one batch: keep the first
                    continue
                seen.add(name)
                cols.setdefault(name, []).append((n, c.values, _KINDS[c.ftype]))
            G.append(self.gid_of[i][c0.series])
            T.append(c0.times)
            B.append(np.full(len(c0), i, dtype=np.int32))
            n += len(c0)
        if not n:
            return False
        batches = len(G)
        G, T = np.concatenate(G), np.concatenate(T)
        order, self.key_start, self.key_end, clean = group_points(G, T, np.concatenate(B), len(self.key_list))
        if not clean:
            return False
        fields = {}
        every = None                # a field every batch has: valid on every row (one mask for all)
        for name, pieces in cols.items():
            kind = pieces[0][2]
            pieces = [p for p in pieces if p[2] == kind]   # another type under one name: keep the first
            if len(pieces) == batches:
                if every is None:
                    every = np.ones(n, dtype=bool)
                vals = pieces[0][1] if len(pieces) == 1 else np.concatenate([p[1] for p in pieces])
                fields[name] = (vals[order], every, kind)
            else:
                v, va, kind = _merge_fields({name: [(o, v, np.ones(len(v), dtype=bool), k)
                                                    for o, v, k in pieces]}, n)[name]
                fields[name] = (v[order], va[order], kind)
        self.rows = _MergedRows(None, T[order], fields, (self.key_start, self.key_end))
        return True

    def _sort(self, shareds) -> None:
        """The rows of each batch (``shared_rows``: points of one series and time merged), all
        sorted by (series, time) in one lexsort."""
        S, T, cols, n = [], [], {}, 0
        for i, sh in enumerate(shareds):
            rows = shared_rows(sh)
            S.append(self.gid_of[i][rows.series])
            T.append(rows.times)
            for name, (v, valid, kind) in rows.fields.items():
                cols.setdefault(name, []).append((n, v, valid, kind))
            n += rows.n
        series, times = np.concatenate(S), np.concatenate(T)
        fields = _merge_fields(cols, n)
        order = np.lexsort((times, series))        # stable: batch order within a tie
        self.rows = _MergedRows(series[order], times[order],
                                {k: (_take(v, order), va[order], kind) for k, (v, va, kind) in fields.items()})
        ks = np.arange(len(self.key_list))
        self.key_start = np.searchsorted(self.rows.series, ks, "left")
        self.key_end = np.searchsorted(self.rows.series, ks, "right")

    def wanted(self, flt: SubscriptionFilter) -> np.ndarray:
        """The common key ids a filter selects (sorted): for parts the bus matched with ``flt``,
        the union of their keys, found without looking at the parts."""
        w = self._wanted.get(flt)
        if w is None:
            w = self._wanted[flt] = match_keys(self._index, flt.measurement, flt.compiled_regex,
                                               flt.tags)
        return w

    def measurement_tag_keys(self, meas: bytes) -> list[str]:
        tk = self.tag_keys.get(meas)
        if tk is None:
            tk = self.tag_keys[meas] = _measurement_tag_keys(self.key_list, self.info_list, meas)
        return tk


_COMBINED: dict = {}
_COMBINED_LIMIT = 4


def combined_rows(shareds: tuple) -> _Combined:
    key = tuple(id(s) for s in shareds)
    hit = _COMBINED.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], shareds)):
        return hit[1]
    comb = _Combined(shareds)
    if len(_COMBINED) >= _COMBINED_LIMIT:
        _COMBINED.pop(next(iter(_COMBINED)), None)
    _COMBINED[key] = (shareds, comb)
    return comb


def _series_from_combined(plan: StreamPlan, parts: list) -> list[Series]:
    """The series of live parts the bus matched with ``plan.filter`` (see raw_series_many)."""
    comb = combined_rows(tuple(b.shared for b, _a in parts))
    want = comb.wanted(plan.filter)
    if len(want) == 1:
        # One series (a stream following one tag value, the common dashboard case): its rows
        # are one slice of the combined rows, already in time order.
        g = int(want[0])
        a, b = int(comb.key_start[g]), int(comb.key_end[g])
        if a == b:
            return []
        return _key_series(plan, comb, a, b, g)
    by_meas: dict[bytes, list[int]] = {}
    for g in want.tolist():
        by_meas.setdefault(comb.info_list[g][0], []).append(g)
    out: list[Series] = []
    for meas in sorted(by_meas):
        gs = np.array(by_meas[meas], dtype=np.int64)
        sel = _ranges(comb.key_start[gs], comb.key_end[gs])
        if len(sel):
            out.extend(_measurement_series(plan, comb.rows, sel, comb.key_list, comb.info_list, meas))
    return out


def _key_series(plan: StreamPlan, comb: _Combined, a: int, b: int, g: int) -> list[Series]:
    """``_measurement_series`` for the rows [a, b) of one key of ``comb`` (sorted by time):
    slices and views instead of gathers and sorts. Tested equal to the general path."""
    rows = comb.rows
    times = rows.times[a:b]
    fields = {}
    for name, (v, valid, kind) in rows.fields.items():
        va = valid[a:b]
        if va.any():
            fields[name] = (v, va, kind)
    keep = None
    if times[0] < plan.cond.min_time or times[-1] > plan.cond.max_time:
        keep = (times >= plan.cond.min_time) & (times <= plan.cond.max_time)
    key_tags = _key_tags(comb.key_list[g])
    if plan.cond.residual is not None:
        fv = {name: (_take(v, np.arange(a, b)) if isinstance(v, StringArray) else v[a:b], va)
              for name, (v, va, _k) in fields.items()}
        r = cond_mod.eval_residual(plan.cond.residual, key_tags, fv, b - a)
        keep = r if keep is None else keep & r
    if keep is not None and keep.all():
        keep = None
    if keep is not None:
        idx = np.flatnonzero(keep)
        if not len(idx):
            return []
        times = times[idx]

    def cut(v, va):
        if isinstance(v, StringArray):
            v = v.take(np.arange(a, b) if keep is None else idx + a)
        else:
            v = v[a:b] if keep is None else v[a:b][idx]
        if keep is not None:
            va = va[idx]
        return v, va

    n = len(times)
    meas = comb.info_list[g][0]
    columns: list[Column] = []
    if plan.wildcard:
        tag_keys = comb.measurement_tag_keys(meas)
        names = sorted(set(fields) | (set(tag_keys) - set(plan.group_tags)))
        spec = [(c, c, None) for c in names]
    else:
        tag_keys = None
        spec = plan.projection
    for out_name, src, hint in spec:
        if hint != "tag" and src in fields:
            v, va, kind = fields[src]
            v, va = cut(v, va)
            columns.append(Column(out_name, v, None if va.all() else va, kind))
        elif hint in (None, "tag") and src in (tag_keys if tag_keys is not None
                                               else comb.measurement_tag_keys(meas)):
            present = src in key_tags
            columns.append(Column(out_name, StringArray.from_list([key_tags.get(src, "")])
                                  .take(np.zeros(n, dtype=np.int64)),
                                  None if present else np.zeros(n, dtype=bool), "string"))
        else:
            columns.append(Column(out_name, None, None, "float"))
    tags = {t: key_tags.get(t, "") for t in plan.group_tags} if plan.group_tags else None
    return [Series(meas.decode("utf-8", "replace"), tags, times, columns)]


def one_series_spec(plan: StreamPlan) -> tuple | None:
    """What ``one_series_events`` needs of a stream, or None when it cannot serve the stream:
    a raw SELECT of named fields (no *, no ::tag, no WHERE on fields) from one measurement."""
    if plan.kind != "raw" or plan.wildcard or plan.cond.residual is not None or \
            plan.filter.measurement is None or any(h == "tag" for _o, _s, h in plan.projection):
        return None
    return tuple(plan.projection)


_ONE_SERIES_TAIL = b"]}]}"


def one_series_events(comb: _Combined, requests: list) -> list:
    """The points events of many streams from one tick's combined rows, for the streams that
    follow one series each (the dashboard case: ``WHERE host = 'h7'``), written by one call of
    ``resultenc.encode_row_ranges`` (rows in C, without the GIL) instead of one Series and one
    encoder call per stream. ``requests``: (plan, spec from ``one_series_spec``, epoch, heads: a
    dict the caller keeps per stream). Per request: (data, last time) — the bytes
    ``encode_data(raw_series_many(...))`` gives for the same parts, and the cursor time — or
    None when the stream has no row, or False when it does not follow exactly one series
    here (the caller formats it the general way). Tested equal to the general path."""
    from chronosdb.ext.resultenc import encode_row_ranges, series_head
    rows = comb.rows
    out: list = [False] * len(requests)
    by_columns: dict[tuple, list] = {}
    for i, (plan, spec, epoch, heads) in enumerate(requests):
        want = comb.wanted(plan.filter)
        if len(want) != 1:
            continue
        g = int(want[0])
        meas = comb.info_list[g][0]
        tag_keys = comb.measurement_tag_keys(meas)
        if any(src in tag_keys for _o, src, _h in spec):
            continue                      # a tag column: the general path writes those
        a, b = int(comb.key_start[g]), int(comb.key_end[g])
        if a < b and (rows.times[a] < plan.cond.min_time or rows.times[b - 1] > plan.cond.max_time):
            t = rows.times[a:b]
            a, b = a + int(np.searchsorted(t, plan.cond.min_time, "left")), \
                a + int(np.searchsorted(t, plan.cond.max_time, "right"))
        if a >= b:
            out[i] = None
            continue
        key = comb.key_list[g]
        head = heads.get(key)
        if head is None:
            key_tags = _key_tags(key)
            tags = {t: key_tags.get(t, "") for t in plan.group_tags} if plan.group_tags else None
            head = heads[key] = b'{"series":[' + series_head(
                meas.decode("utf-8", "replace"), tags, ["time"] + [o for o, _s, _h in spec])
        by_columns.setdefault((epoch, tuple(src for _o, src, _h in spec)), []).append((i, a, b, head))
    for (epoch, srcs), group in by_columns.items():
        columns = []
        for src in srcs:
            f = rows.fields.get(src)
            columns.append(Column(src, None, None, "float") if f is None else Column(src, f[0], f[1], f[2]))
        docs = encode_row_ranges(rows.times, columns, [a for _i, a, _b, _h in group],
                                 [b for _i, _a, b, _h in group], [h for _i, _a, _b, h in group],
                                 _ONE_SERIES_TAIL, epoch)
        for (i, _a, b, _h), doc in zip(group, docs):
            out[i] = (doc, int(rows.times[b - 1]))
    return out


def raw_series_many(plan: StreamPlan, parts: list, keys: KeyInfo) -> list[Series]:
    """``raw_series`` of several queued batches at once, as one event: ``parts`` is a list of
    (batch, after). Each part contributes the slices of its shared rows (numpy gathers, a
    Python step per part and per matched key only); then one sort by (series, time), one time
    and residual filter and one series build for all of them, instead of one per batch.
    Parts from the bus must have been matched with ``plan.filter`` (the stream's own filter)."""
    if len(parts) == 1:
        return raw_series(plan, parts[0][0], keys, parts[0][1])
    if all(isinstance(b, MatchedBatch) and a is None for b, a in parts) and \
            len({id(b.shared) for b, _a in parts}) == len(parts):
        # Live batches from the bus: slice the rows of all of them combined, built once for
        # every stream that took the same batches (see _Combined).
        return _series_from_combined(plan, parts)
    gid: dict[bytes, int] = {}
    key_list: list[bytes] = []
    info_list: list = []
    S, T = [], []
    cols: dict[str, list] = {}          # name -> [(offset, values, valid, kind)]
    n = 0
    for batch, after in parts:
        rows, infos, kidx = _rows_of(batch, keys)
        if not len(kidx):
            continue
        if len(kidx) == 1 and after is None:
            # One series (a stream following one tag value): its rows are one slice; views.
            a, b = int(rows.key_start[kidx[0]]), int(rows.key_end[kidx[0]])
            if a == b:
                continue
            key = batch.keys[int(kidx[0])]
            g = gid.get(key)
            if g is None:
                g = gid[key] = len(key_list)
                key_list.append(key)
                info_list.append(infos[int(kidx[0])])
            S.append(np.full(b - a, g, dtype=np.int64))
            T.append(rows.times[a:b])
            for name, (v, valid, kind) in rows.fields.items():
                va = valid[a:b]
                if va.any():
                    cols.setdefault(name, []).append(
                        (n, v.take(np.arange(a, b)) if isinstance(v, StringArray) else v[a:b], va, kind))
            n += b - a
            continue
        sel = _ranges(rows.key_start[kidx], rows.key_end[kidx])
        if after is not None:
            sel = sel[rows.times[sel] > after]
        if not len(sel):
            continue
        ids = []
        for k in kidx.tolist():
            key = batch.keys[k]
            g = gid.get(key)
            if g is None:
                g = gid[key] = len(key_list)
                key_list.append(key)
                info_list.append(infos[k])
            ids.append(g)
        S.append(np.asarray(ids, dtype=np.int64)[np.searchsorted(kidx, rows.series[sel])])
        T.append(rows.times[sel])
        for name, (v, valid, kind) in rows.fields.items():
            va = valid[sel]
            if va.any():
                cols.setdefault(name, []).append((n, _take(v, sel), va, kind))
        n += len(sel)
    if not n:
        return []
    series = np.concatenate(S)
    times = np.concatenate(T)
    fields = _merge_fields(cols, n)
    merged = _MergedRows(series, times, fields)
    order = np.lexsort((times, series))
    meas_of = [m for m, _t in info_list]
    out: list[Series] = []
    for meas in sorted(set(meas_of)):
        want = np.array([m == meas for m in meas_of], dtype=bool)
        sel = order[want[series[order]]]
        if len(sel):
            out.extend(_measurement_series(plan, merged, sel, key_list, info_list, meas))
    return out


def _after(s: Series, after: int | None) -> Series | None:
    if after is None:
        return s
    keep = np.flatnonzero(s.times > after)
    if len(keep) == len(s.times):
        return s
    if not len(keep):
        return None
    cols = [Column(c.name, None if c.values is None else _take(c.values, keep),
                   None if c.valid is None else c.valid[keep], c.kind) for c in s.columns]
    return Series(s.name, s.tags, s.times[keep], cols)


def _measurement_tag_keys(keys, infos, meas: bytes) -> list[str]:
    return sorted({k.decode("utf-8", "replace") for m, t in infos if m == meas for k in t})


def _measurement_series(plan: StreamPlan, rows: _Rows, sel: np.ndarray, keys, infos,
                        meas: bytes) -> list[Series]:
    """The series of the rows ``sel`` (indices into ``rows``, sorted by series then time, all of
    measurement ``meas``)."""
    sel_series = rows.series[sel]
    sel_times = rows.times[sel]
    # The fields this subscriber's points carry (a field no selected point has is absent, as if
    # its points had been cut out of the batch).
    fields = {name: f for name, f in rows.fields.items() if f[1][sel].any()}
    keep = (sel_times >= plan.cond.min_time) & (sel_times <= plan.cond.max_time)
    residual = plan.cond.residual
    distinct = np.flatnonzero(np.r_[True, sel_series[1:] != sel_series[:-1]])
    bounds = np.r_[distinct, len(sel)]
    if residual is not None:
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            seg = sel[a:b]
            tags = _key_tags(keys[int(sel_series[a])])
            fv = {name: (_take(v, seg), valid[seg]) for name, (v, valid, _k) in fields.items()}
            keep[a:b] &= cond_mod.eval_residual(residual, tags, fv, b - a)
    idx = sel if keep.all() else sel[keep]
    if not len(idx):
        return []
    row_series = rows.series[idx]
    # The distinct keys of the kept rows (sorted: rows are by series) and each row's position
    # among them; tag values are looked up per key, never per point.
    ukeys = row_series[np.r_[True, row_series[1:] != row_series[:-1]]]
    key_pos = np.searchsorted(ukeys, row_series)
    key_tags = [_key_tags(keys[k]) for k in ukeys.tolist()]

    def tag_column(name: str) -> tuple:
        per_key = StringArray.from_list([kt.get(name, "") for kt in key_tags])
        present = np.array([name in kt for kt in key_tags], dtype=bool)
        return per_key.take(key_pos), present[key_pos]

    columns: list[Column] = []
    if plan.wildcard:
        tag_keys = _measurement_tag_keys(keys, infos, meas)
        names = sorted(set(fields) | (set(tag_keys) - set(plan.group_tags)))
        spec = [(n, n, None) for n in names]
    else:
        tag_keys = None
        spec = list(plan.projection)
    for out_name, src, hint in spec:
        if hint != "tag" and src in fields:
            v, valid, kind = fields[src]
            va = valid[idx]
            columns.append(Column(out_name, _take(v, idx), None if va.all() else va, kind))
        elif hint in (None, "tag") and src in (tag_keys if tag_keys is not None
                                               else _measurement_tag_keys(keys, infos, meas)):
            v, valid = tag_column(src)
            columns.append(Column(out_name, v, None if valid.all() else valid, "string"))
        else:
            columns.append(Column(out_name, None, None, "float"))
    times = rows.times[idx]
    name = meas.decode("utf-8", "replace")
    if not plan.group_tags:
        order = np.argsort(times, kind="stable")
        return [_series(name, None, times, columns, order)]
    # GROUP BY tags: one output series per distinct combination (found per key).
    combos: dict[tuple, int] = {}
    group_of_key = np.array([combos.setdefault(tuple(kt.get(g, "") for g in plan.group_tags), len(combos))
                             for kt in key_tags], dtype=np.int64)
    row_group = group_of_key[key_pos]
    out = []
    for combo, g in sorted(combos.items()):
        sel_g = np.flatnonzero(row_group == g)
        if not len(sel_g):
            continue
        order = sel_g[np.argsort(times[sel_g], kind="stable")]
        out.append(_series(name, dict(zip(plan.group_tags, combo)), times, columns, order))
    return out


def merge_series(events: list[list[Series]]) -> list[Series]:
    """Several consecutive events' series as one event: entries with the same name, tags and
    columns are concatenated (and put in time order, stable); others stay separate, in order."""
    if len(events) == 1:
        return events[0]
    groups: dict[tuple, list[Series]] = {}
    for ev in events:
        for s in ev:
            sig = (s.name, tuple(sorted((s.tags or {}).items())),
                   tuple((c.name, c.kind, c.values is None) for c in s.columns))
            groups.setdefault(sig, []).append(s)
    out = []
    for parts in groups.values():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        times = np.concatenate([p.times for p in parts])
        cols = []
        for j, c in enumerate(parts[0].columns):
            if c.values is None:
                cols.append(Column(c.name, None, None, c.kind))
                continue
            vals = [p.columns[j].values for p in parts]
            v = StringArray.concat(vals) if isinstance(vals[0], StringArray) else np.concatenate(vals)
            valid = None
            if any(p.columns[j].valid is not None for p in parts):
                valid = np.concatenate([p.columns[j].valid if p.columns[j].valid is not None
                                        else np.ones(len(p.times), dtype=bool) for p in parts])
            cols.append(Column(c.name, v, valid, c.kind))
        if len(times) > 1 and (times[1:] < times[:-1]).any():
            out.append(_series(parts[0].name, parts[0].tags, times, cols,
                               np.argsort(times, kind="stable")))
        else:
            out.append(Series(parts[0].name, parts[0].tags, times, cols))
    return out


def _series(name, tags, times, columns, order) -> Series:
    cols = [Column(c.name, None if c.values is None else _take(c.values, order),
                   None if c.valid is None else c.valid[order], c.kind) for c in columns]
    return Series(name, tags, times[order], cols)
