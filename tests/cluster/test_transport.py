"""Transport over real loopback sockets: ordering, reconnects, back-pressure, hostile frames."""

import asyncio
import random
import socket
import struct

import cbor2

from chronosdb.cluster.transport import Transport, encode_frame, reconnect_delays

LOOP = ("127.0.0.1", 0)


async def until(pred, timeout=10.0, what="condition"):
    """Poll ``pred`` until true; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class Inbox:
    def __init__(self):
        self.got = []

    def __call__(self, frm, obj):
        self.got.append((frm, obj))


async def pair(**kw):
    ia, ib = Inbox(), Inbox()
    a = Transport(1, LOOP, ia, rng=random.Random(1), backoff_initial=0.01, backoff_max=0.1, **kw)
    b = Transport(2, LOOP, ib, rng=random.Random(2), backoff_initial=0.01, backoff_max=0.1, **kw)
    await a.start()
    await b.start()
    a.add_peer(2, b.address)
    b.add_peer(1, a.address)
    return a, b, ia, ib


def test_messages_arrive_in_order_per_peer_with_the_sender_id():
    async def main():
        a, b, ia, ib = await pair()
        for i in range(300):
            assert a.send(2, [i, b"payload", "s"])
        assert b.send(1, {"hello": 1})
        await until(lambda: len(ib.got) == 300, what="300 messages at b")
        await until(lambda: len(ia.got) == 1, what="1 message at a")
        assert ib.got == [(1, [i, b"payload", "s"]) for i in range(300)]
        assert ia.got == [(2, {"hello": 1})]
        assert a.send(99, "x") is False            # unknown peer
        assert a.stats()["peers"][2]["sent"] == 300
        await a.close()
        await b.close()
    run(main())


def test_reconnects_after_the_listener_restarts():
    async def main():
        a, b, ia, ib = await pair()
        port = b.address[1]
        a.send(2, "first")
        await until(lambda: ib.got, what="first message")
        await b.close()
        ib2 = Inbox()
        b2 = Transport(2, ("127.0.0.1", port), ib2)
        await b2.start()
        # Messages sent into the dead connection are lost (Raft retries); keep sending until
        # the link has reconnected and one arrives, then check nothing after it is lost.
        n = 0
        while not ib2.got:
            a.send(2, ["probe", n])
            n += 1
            await asyncio.sleep(0.02)
            assert n < 500, "link never reconnected"
        for i in range(20):
            assert a.send(2, ["after", i])
        await until(lambda: [o for _, o in ib2.got if o[0] == "after"] == [["after", i] for i in range(20)],
                    what="messages after reconnect")
        assert a.stats()["peers"][2]["connects"] >= 2
        await a.close()
        await b2.close()
    run(main())


def test_full_queue_returns_false():
    async def main():
        # A peer nobody listens on: the link never connects, so the queue only fills.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
        s.close()
        a = Transport(1, LOOP, Inbox(), queue_limit=5, rng=random.Random(0))
        await a.start()
        a.add_peer(3, dead)
        assert [a.send(3, i) for i in range(7)] == [True] * 5 + [False] * 2
        assert a.stats()["peers"][3]["dropped"] == 2
        await a.close()
    run(main())


async def raw_connection(address):
    reader, writer = await asyncio.open_connection(*address)
    return reader, writer


async def closed_by_peer(reader, timeout=5.0):
    data = await asyncio.wait_for(reader.read(), timeout)   # read() returns at EOF
    return data == b""


def test_oversized_and_garbage_frames_close_only_that_connection():
    async def main():
        a, b, ia, ib = await pair(max_frame=1024)
        hello = encode_frame(["chronosdb-raft", 1, 7, b""])
        # 1. Oversized length after a valid hello.
        r, w = await raw_connection(b.address)
        w.write(hello + struct.pack(">I", 1 << 30))
        assert await closed_by_peer(r)
        # 2. A body that is not CBOR.
        r, w = await raw_connection(b.address)
        w.write(hello + struct.pack(">I", 3) + b"\xff\xff\xff")
        assert await closed_by_peer(r)
        # 3. Garbage instead of a hello.
        r, w = await raw_connection(b.address)
        w.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await closed_by_peer(r)
        # 4. A well-formed frame that is not a hello.
        r, w = await raw_connection(b.address)
        w.write(encode_frame(["nope", 1, 7]))
        assert await closed_by_peer(r)
        await until(lambda: b.rejected_connections == 4, what="4 rejected connections")
        # A valid hello then valid messages from a raw client still work, and so does a.
        r, w = await raw_connection(b.address)
        w.write(hello + encode_frame(["raw", 1]))
        a.send(2, "still here")
        await until(lambda: (7, ["raw", 1]) in ib.got and (1, "still here") in ib.got,
                    what="messages after the bad connections")
        w.close()
        # The sender refuses to build an oversized frame instead of sending it.
        try:
            a.send(2, b"x" * 2000)
        except Exception as e:
            assert "exceeds the limit" in str(e)
        else:
            raise AssertionError("oversized send was accepted")
        await a.close()
        await b.close()
    run(main())


def test_hello_frame_is_cbor_with_the_node_id():
    frame = encode_frame(["chronosdb-raft", 1, 5])
    (n,) = struct.unpack(">I", frame[:4])
    assert cbor2.loads(frame[4:4 + n]) == ["chronosdb-raft", 1, 5]


def test_reconnect_backoff_doubles_to_the_cap_with_seeded_jitter():
    take = lambda seed: [d for _, d in zip(range(10), reconnect_delays(random.Random(seed), 0.1, 1.0))]
    delays = take(7)
    assert delays == take(7) and delays != take(8)          # the rng decides the jitter
    bases = [0.1, 0.2, 0.4, 0.8] + [1.0] * 6
    for d, base in zip(delays, bases):
        assert base / 2 <= d <= base


def test_a_transport_with_a_secret_refuses_hellos_without_its_proof():
    from chronosdb.cluster.transport import hello_proof

    async def main():
        ia, ib = Inbox(), Inbox()
        a = Transport(1, LOOP, ia, rng=random.Random(1), secret=b"s3cret")
        b = Transport(2, LOOP, ib, rng=random.Random(2), secret=b"s3cret")
        await a.start()
        await b.start()
        a.add_peer(2, b.address)
        assert a.send(2, "with the secret")
        await until(lambda: (1, "with the secret") in ib.got, what="delivery between members")
        # no proof, a proof for another secret, another node's proof: each connection refused
        for proof, sender in ((b"", 7), (hello_proof(b"other", 7), 7), (hello_proof(b"s3cret", 8), 7)):
            r, w = await raw_connection(b.address)
            w.write(encode_frame(["chronosdb-raft", 1, sender, proof]) + encode_frame(["injected", sender]))
            assert await closed_by_peer(r)
        await until(lambda: b.rejected_connections == 3, what="3 refused hellos")
        assert not any(m == ["injected", 7] for _s, m in ib.got)
        # a member with the wrong secret cannot reach b either
        c = Transport(3, LOOP, Inbox(), rng=random.Random(3), secret=b"wrong")
        await c.start()
        c.add_peer(2, b.address)
        c.send(2, "from outside")
        await until(lambda: b.rejected_connections >= 4, what="the outsider refused")
        assert (3, "from outside") not in ib.got
        for t in (a, b, c):
            await t.close()
    run(main())
