"""Linearizability checker for key-value histories (puts, gets, compare-and-sets).

A *history* is what clients observed: for each operation, when it was called, when (if ever)
it returned, and what it returned. The history is linearizable when there is one total order of
the operations that (a) respects real time — an operation that returned before another was
called comes first — and (b) is a legal run of a sequential key-value store producing exactly
the observed outputs.

How the search works:

* **P-compositionality.** Linearizability is local: a history is linearizable iff each key's
  sub-history is. The history is split by key and each part is checked on its own, which turns
  one exponential search into many small ones.
* **Wing & Gong's search with Lowe's memoisation** (G. Lowe, "Testing for linearizability",
  2017; the same "WGL" algorithm the Porcupine checker describes). The call and return events
  of one key sit in a doubly linked list ordered by time. Walking it, a *call* event is a
  candidate to linearize next: if the sequential model accepts the operation in the current
  state, both its events are lifted out of the list, the choice is pushed on a stack, and the
  walk restarts at the head. Reaching a *return* event means that operation had to take effect
  before now and none of the choices left did, so the last choice is undone (backtracking).
  The list empties exactly when every operation has been linearized. Lowe's observation: two
  partial linearizations with the same *set* of linearized operations and the same model state
  have the same future, so each (set as a bitset, state) pair is explored once.
* **Unknown outcomes.** An operation whose client never heard back (``ret is None``) may have
  taken effect at any moment after its call, or never. Its return event is placed after every
  other event and its output is not checked. "Never" needs no special case: linearizing it last,
  after every observed operation, changes no observed output.

Real-time order is strict: A precedes B only when ``A.ret < B.call``; equal times count as
overlapping (call events sort before return events at the same time).

Values must be hashable (the model state is the key's current value, part of the memo key).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["Op", "CheckResult", "CheckBudgetExceeded", "check_kv"]

KINDS = ("put", "get", "cas")


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on one key.

    ``arg``: put → the value; cas → ``(expected, new)``; get → None.
    ``output``: get → the value read (None = absent); cas → whether it swapped; put → None.
    ``ret is None`` means the outcome is unknown (the output is then ignored).
    """

    client: int
    kind: str
    key: str
    arg: object
    call: int
    ret: int | None
    output: object = None


class CheckBudgetExceeded(Exception):
    """The search visited more (linearized set, state) pairs than allowed: no verdict."""

    def __init__(self, key: str, explored: int, max_states: int):
        super().__init__(
            f"linearizability search for key {key!r} exceeded max_states={max_states} "
            f"({explored} states explored): history too concurrent to check within budget")
        self.key, self.explored, self.max_states = key, explored, max_states


@dataclass
class CheckResult:
    ok: bool
    key: str | None = None          # the first key whose sub-history is not linearizable
    explored: int = 0               # (linearized set, state) pairs visited over all keys
    # For a failure: the longest legal prefix found and the operations it could not place.
    best_prefix: list[Op] = field(default_factory=list)
    stuck: list[Op] = field(default_factory=list)

    def explain(self) -> str:
        if self.ok:
            return f"linearizable ({self.explored} states explored)"
        lines = [f"key {self.key!r} is not linearizable ({self.explored} states explored).",
                 f"Longest legal order found ({len(self.best_prefix)} ops):"]
        lines += [f"  {_describe(op)}" for op in self.best_prefix]
        lines.append("None of these could be placed next:")
        lines += [f"  {_describe(op)}" for op in self.stuck]
        return "\n".join(lines)


def _describe(op: Op) -> str:
    ret = "?" if op.ret is None else op.ret
    if op.kind == "put":
        what = f"put({op.arg!r})"
    elif op.kind == "get":
        what = f"get() -> {op.output!r}" if op.ret is not None else "get() -> ?"
    else:
        exp, new = op.arg
        out = "?" if op.ret is None else op.output
        what = f"cas({exp!r}, {new!r}) -> {out}"
    return f"client {op.client}: {what} [{op.call}, {ret}]"


def _step(state, op: Op, unknown: bool):
    """The sequential model of one key: (accepted, next state). ``state`` is the value."""
    if op.kind == "put":
        return True, op.arg
    if op.kind == "get":
        return unknown or op.output == state, state
    expected, new = op.arg
    swapped = state == expected
    if not unknown and bool(op.output) != swapped:
        return False, state
    return True, (new if swapped else state)


class _Event:
    __slots__ = ("op_id", "is_call", "match", "prev", "next")

    def __init__(self, op_id: int, is_call: bool):
        self.op_id, self.is_call = op_id, is_call
        self.match = self.prev = self.next = None


def _validate(op: Op) -> None:
    if op.kind not in KINDS:
        raise ValueError(f"op kind must be one of {KINDS}, got {op.kind!r}")
    if op.ret is not None and op.ret < op.call:
        raise ValueError(f"op returns before it is called (call={op.call}, ret={op.ret}): {op!r}")
    if op.kind == "cas" and not (isinstance(op.arg, tuple) and len(op.arg) == 2):
        raise ValueError(f"cas arg must be (expected, new), got {op.arg!r}")


def _check_key(key: str, ops: list[Op], max_states: int, explored_before: int):
    """WGL search over one key. Returns (ok, explored, best_prefix, stuck)."""
    n = len(ops)
    end = max([op.call for op in ops] + [op.ret for op in ops if op.ret is not None]) + 1
    # (time, 0 for call / 1 for return, op id): calls sort before returns at equal times.
    raw = []
    for i, op in enumerate(ops):
        raw.append((op.call, 0, i))
        raw.append((op.ret if op.ret is not None else end, 1, i))
    raw.sort()
    head = _Event(-1, False)
    prev = head
    calls: dict[int, _Event] = {}
    for _, is_ret, i in raw:
        ev = _Event(i, not is_ret)
        if is_ret:
            ev.match = calls[i]
            calls[i].match = ev
        else:
            calls[i] = ev
        prev.next, ev.prev = ev, prev
        prev = ev

    def lift(call: _Event) -> None:
        call.prev.next = call.next
        if call.next is not None:
            call.next.prev = call.prev
        ret = call.match
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev

    def unlift(call: _Event) -> None:
        ret = call.match
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
        call.prev.next = call
        if call.next is not None:
            call.next.prev = call

    unknown = [op.ret is None for op in ops]
    state = None
    linearized = 0
    seen: set = set()
    stack: list[tuple[_Event, object]] = []
    best: list[int] = []
    best_stuck: list[int] = []
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            i = entry.op_id
            accepted, new_state = _step(state, ops[i], unknown[i])
            if accepted:
                new_lin = linearized | (1 << i)
                memo = (new_lin, new_state)
                if memo not in seen:
                    seen.add(memo)
                    if len(seen) + explored_before > max_states:
                        raise CheckBudgetExceeded(key, len(seen) + explored_before, max_states)
                    stack.append((entry, state))
                    state, linearized = new_state, new_lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # An operation must have taken effect by now and no remaining choice works.
            if len(stack) > len(best) or not best_stuck:
                best = [e.op_id for e, _ in stack]
                stuck, ev = [], head.next
                while ev is not None and ev is not entry.next:
                    if ev.is_call:
                        stuck.append(ev.op_id)
                    ev = ev.next
                best_stuck = stuck
            if not stack:
                return False, len(seen), [ops[i] for i in best], [ops[i] for i in best_stuck]
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op_id)
            unlift(entry)
            entry = entry.next
    assert linearized == (1 << n) - 1
    return True, len(seen), [], []


def check_kv(history: Sequence[Op], *, max_states: int = 1_000_000) -> CheckResult:
    """Is ``history`` linearizable for a key-value store whose keys start absent (None)?

    Keys are checked in order of first appearance; the first failing key is reported. Raises
    ``CheckBudgetExceeded`` once more than ``max_states`` states were explored in total.
    """
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        _validate(op)
        by_key[op.key].append(op)
    explored = 0
    for key, ops in by_key.items():
        ok, n, prefix, stuck = _check_key(key, ops, max_states, explored)
        explored += n
        if not ok:
            return CheckResult(False, key, explored, prefix, stuck)
    return CheckResult(True, None, explored)
