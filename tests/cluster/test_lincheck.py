"""The linearizability checker: hand-written histories with known verdicts, and seeded random
histories produced by a real sequential execution (always accepted) and then corrupted
(always rejected)."""

import random

import pytest

from chronosdb.cluster.lincheck import CheckBudgetExceeded, Op, check_kv


def put(c, v, call, ret, key="x"):
    return Op(c, "put", key, v, call, ret, None)


def get(c, out, call, ret, key="x"):
    return Op(c, "get", key, None, call, ret, out)


def cas(c, exp, new, ok, call, ret, key="x"):
    return Op(c, "cas", key, (exp, new), call, ret, ok)


def test_sequential_history_is_linearizable():
    r = check_kv([put(1, 1, 0, 1), get(2, 1, 2, 3), put(1, 2, 4, 5), get(2, 2, 6, 7)])
    assert r.ok and r.key is None and r.explored >= 4


def test_read_of_absent_key_is_none():
    assert check_kv([get(1, None, 0, 1), put(2, "a", 2, 3)]).ok
    assert not check_kv([put(2, "a", 0, 1), get(1, None, 2, 3)]).ok


def test_stale_read_after_completed_write_is_rejected():
    r = check_kv([put(1, 1, 0, 1), put(1, 2, 2, 3), get(2, 1, 4, 5)])
    assert not r.ok and r.key == "x"
    assert "not linearizable" in r.explain() and "get() -> 1" in r.explain()


def test_read_concurrent_with_write_may_see_either_value():
    base = [put(1, 1, 0, 1), put(1, 2, 2, 6)]
    assert check_kv(base + [get(2, 1, 3, 4)]).ok
    assert check_kv(base + [get(2, 2, 3, 4)]).ok


def test_reads_that_see_concurrent_writes_in_incompatible_orders_are_rejected():
    # Two concurrent writes; reader A sees 1 then 2, reader B sees 2 then 1 — all reads
    # overlap both writes but are sequential per reader, so no single order explains both.
    h = [put(1, 1, 0, 10), put(2, 2, 0, 10),
         get(3, 1, 1, 2), get(3, 2, 3, 4),
         get(4, 2, 1, 2), get(4, 1, 3, 4)]
    assert not check_kv(h).ok
    # Both readers agreeing on the order is fine.
    h_ok = h[:4] + [get(4, 1, 1, 2), get(4, 2, 3, 4)]
    assert check_kv(h_ok).ok


def test_op_returning_before_another_is_called_cannot_be_ordered_after_it():
    # put(2) completed before get was called, so the get cannot precede it.
    assert not check_kv([put(1, 1, 0, 1), put(1, 2, 2, 3), get(2, 1, 5, 6)]).ok
    # With overlap (put(2) still running when get is called) it can.
    assert check_kv([put(1, 1, 0, 1), put(1, 2, 2, 7), get(2, 1, 5, 6)]).ok
    # Equal times count as overlap, not precedence.
    assert check_kv([put(1, 1, 0, 1), put(1, 2, 2, 5), get(2, 1, 5, 6)]).ok


def test_cas_anomalies():
    # Two successful cas from the same expected value cannot both succeed.
    assert not check_kv([put(1, 0, 0, 1), cas(1, 0, 1, True, 2, 5), cas(2, 0, 2, True, 2, 5)]).ok
    # One wins, one loses: fine.
    assert check_kv([put(1, 0, 0, 1), cas(1, 0, 1, True, 2, 5), cas(2, 0, 2, False, 2, 5),
                     get(3, 1, 6, 7)]).ok
    # A failed cas whose expectation was certainly true is rejected.
    assert not check_kv([put(1, 5, 0, 1), cas(2, 5, 6, False, 2, 3)]).ok
    # A successful cas that a later read does not reflect is rejected.
    assert not check_kv([put(1, 5, 0, 1), cas(2, 5, 6, True, 2, 3), get(1, 5, 4, 5)]).ok


def test_unknown_outcome_write_may_or_may_not_have_happened():
    lost = put(1, 9, 0, None)
    assert check_kv([put(2, 1, 0, 1), lost, get(3, 9, 5, 6)]).ok       # took effect
    assert check_kv([put(2, 1, 0, 1), lost, get(3, 1, 5, 6)]).ok       # never happened
    assert check_kv([put(2, 1, 0, 1), lost, get(3, 9, 5, 6), get(3, 9, 7, 8)]).ok
    # ...but it cannot take effect twice, nor before it was called.
    assert not check_kv([put(2, 1, 0, 1), lost, get(3, 9, 5, 6), get(3, 1, 7, 8),
                         get(3, 9, 9, 10)]).ok
    assert not check_kv([put(2, 1, 0, 1), get(3, 9, 2, 3), put(1, 9, 4, None)]).ok


def test_unknown_outcome_cas_and_get_are_unconstrained():
    h = [put(1, 0, 0, 1), cas(2, 0, 1, None, 2, None), get(3, "junk", 3, None), get(4, 1, 5, 6)]
    assert check_kv(h).ok
    h2 = [put(1, 0, 0, 1), cas(2, 0, 1, None, 2, None), get(4, 0, 5, 6)]
    assert check_kv(h2).ok


def test_keys_are_checked_independently_and_the_failing_key_is_named():
    h = [put(1, 1, 0, 1, key="a"), get(2, 1, 2, 3, key="a"),
         put(1, 1, 0, 1, key="b"), get(2, 7, 2, 3, key="b")]
    r = check_kv(h)
    assert not r.ok and r.key == "b"


def test_bad_ops_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="kind"):
        check_kv([Op(1, "inc", "x", 1, 0, 1, None)])
    with pytest.raises(ValueError, match="returns before"):
        check_kv([put(1, 1, 5, 2)])


def test_budget_is_enforced():
    # Many fully concurrent writes and reads: the state space is large.
    h = [put(c, c, 0, 100) for c in range(14)] + [get(100 + c, c, 0, 100) for c in range(14)]
    with pytest.raises(CheckBudgetExceeded, match="max_states=50"):
        check_kv(h, max_states=50)


def random_history(rng: random.Random, n_ops: int, n_clients: int, keys: str):
    """Run ops against a real dict in a random sequential order, then give each op a
    call/return interval that contains its (instantaneous) execution point. Some ops are
    left with unknown outcome. Returns (history, values ever written)."""
    store: dict = {}
    history = []
    written = set()
    t = 0
    for _ in range(n_ops):
        t += rng.randint(1, 3)
        key = rng.choice(keys)
        kind = rng.choice(("put", "put", "get", "get", "cas"))
        if kind == "put":
            v = rng.randint(0, 5)
            store[key] = v
            written.add(v)
            arg, out = v, None
        elif kind == "get":
            arg, out = None, store.get(key)
        else:
            exp, new = rng.choice((None, 0, 1, 2, 3)), rng.randint(0, 5)
            out = store.get(key) == exp
            if out:
                store[key] = new
                written.add(new)
            arg = (exp, new)
        call = t - rng.randint(0, 8)
        ret = None if rng.random() < 0.05 and kind != "get" else t + rng.randint(0, 8)
        history.append(Op(rng.randrange(n_clients), kind, key, arg, call, ret,
                          out if ret is not None else None))
    return history, written


@pytest.mark.parametrize("seed", range(40))
def test_random_sequential_histories_are_accepted_and_corrupted_reads_rejected(seed):
    rng = random.Random(seed)
    history, written = random_history(rng, n_ops=60, n_clients=5, keys="abc")
    r = check_kv(history)
    assert r.ok, r.explain()

    reads = [i for i, op in enumerate(history) if op.kind == "get" and op.ret is not None]
    i = rng.choice(reads)
    never = max(written, default=0) + 1000
    op = history[i]
    bad = history[:i] + [Op(op.client, op.kind, op.key, None, op.call, op.ret, never)] \
        + history[i + 1:]
    r = check_kv(bad)
    assert not r.ok and r.key == op.key
    assert repr(never) in r.explain() or r.stuck
