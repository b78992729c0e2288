"""Streaming benchmark: delivery latency, ingest with subscribers, a stalled subscriber's memory.

    python bench/bench_stream.py [--subscribers 100] [--idle 1000] [--seconds 5] [--rounds 5]
                                 [--stall-seconds 60]

Against a real ``chronosdb serve`` subprocess (auth off, fsync on, fresh data dir). Subscribers
are SSE clients in a *separate process* from the writers: one epoll loop over all their sockets
(until the eighth session, asyncio streams, whose own CPU on these two cores was part of the
ingest ratio).

1. Latency: N subscribers stream ``SELECT v FROM lat``; the writer posts one point at a time and
   notes when its /write returned 204; for each point of each event, the subscriber process
   notes when the event arrived at its socket (the kernel's receive timestamp,
   ``SO_TIMESTAMPNS``) and when it read it. The difference from the 204 (same host clock) is
   the delivery latency; p50/p99/max over all deliveries. (Until the eighth session an asyncio
   client timed its own reads; its serial Python over 100 sockets was most of the measured
   tail.) Also printed: the /write round trip meanwhile, and
   the delay from sending the write to the event (which does not depend on how soon the 204
   came back).
2. Ingest: values/s of /write (bodies of 5000 lines over 100 hosts, 2 writer connections) with
   no subscribers, then with ``--idle`` idle subscribers (a measurement nobody writes) and
   ``--subscribers`` active ones, alternated ``--rounds`` times, and the median of the rounds'
   ratios (each phase measured after ``--warmup`` seconds of the same writes, so the work of
   opening or closing 1,100 streams is not counted in either) — twice: active subscribers that each follow one
   host (``WHERE host = 'hN'``: together they receive every point once, the dashboard case), and
   active subscribers that each stream everything written (every point delivered
   ``--subscribers`` times: a fan-out of 100x the ingest on the same cores). /write round-trip
   p50/p90 is printed for each.
   Then the same streams measured *interleaved* (``--interleaved-rounds``, default 20): the
   1,100 streams stay open on database ``bench`` while short phases alternate between writing
   there and writing to a database without streams, so each round's two phases see nearly the
   same machine (see ``interleaved``).
3. Stall: one subscriber opens a stream and stops reading; writers keep writing for
   ``--stall-seconds``; the server's RSS before and after (VmRSS, with its stream process) is
   printed.

Server CPU and RSS count the server's child processes (the stream process) too; each ingest
phase with subscribers also prints the points handed to subscriber queues and dropped (a ratio
bought by dropping points would mean nothing).
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from serverproc import ServerProcess  # noqa: E402


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """The server's child processes (the stream process serves the streams)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree_cpu_s(pid: int) -> float:
    return cpu_s(pid) + sum(cpu_s(c) for c in children(pid))


def tree_rss_kb(pid: int) -> int:
    return rss_kb(pid) + sum(rss_kb(c) for c in children(pid))


def pubsub_counts(srv) -> tuple[float, float]:
    """(points delivered to subscriber queues, points dropped) so far, from /metrics."""
    _st, _h, body = srv.request("GET", "/metrics", key=None)
    out = {"delivered": 0.0, "dropped": 0.0}
    for line in body.decode().splitlines():
        for k in out:
            if line.startswith(f"chronosdb_pubsub_points_{k}_total"):
                out[k] = float(line.split()[-1])
    return out["delivered"], out["dropped"]


# -- subscriber process ------------------------------------------------------------------------

def _active_query(i: int, per_host: bool) -> str:
    return f"SELECT v FROM load WHERE host = 'h{i % 100}'" if per_host else "SELECT v FROM load"


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)    # Linux; SCM_TIMESTAMPNS is the same


def subscribers_main(port: int, queries: list, conn, record: bool) -> None:
    """The subscribers: one SSE connection per query, all served by one epoll loop in this
    process; tells ``conn`` "ready" once every stream is open and runs until told "stop".

    With ``record`` (the latency phase) each socket has ``SO_TIMESTAMPNS`` set, so every read
    also returns the kernel's receive time of the data (CLOCK_REALTIME, as ``time.time_ns``):
    when the event *arrived* at the subscriber's socket, independent of how long this one
    process takes to get round to the other sockets. Both that and the time this process read
    it are recorded: each point of each complete ``points`` event gives ``(point time, kernel
    arrival, read)``, sent back on "stop". Without it (the ingest phases) what arrives is read
    and discarded, as cheaply as Python can (a client's own CPU shares these two cores)."""
    import select
    from urllib.parse import urlencode
    socks, bufs, opened = {}, {}, set()
    for q in queries:
        s = socket.create_connection(("127.0.0.1", port))
        if record:
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        path = "/stream?" + urlencode({"db": "bench", "q": q, "epoch": "ns"})
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.setblocking(False)
        socks[s.fileno()] = s
        bufs[s.fileno()] = b""
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    arrivals = []
    marker = b"event: points\ndata: "
    ready_sent = not queries
    if ready_sent:
        conn.send("ready")
    scratch = bytearray(1 << 20)
    while True:
        if ready_sent and conn.poll():
            conn.recv()                         # "stop"
            break
        for fd, _ev in ep.poll(0.05):
            s = socks[fd]
            if not record and fd in opened:
                try:
                    if not s.recv_into(scratch):
                        ep.unregister(fd)
                except BlockingIOError:
                    pass
                continue
            try:
                data, anc, _flags, _addr = s.recvmsg(65536, 64)
            except BlockingIOError:
                continue
            read = time.time_ns()
            if not data:
                ep.unregister(fd)
                continue
            buf = bufs[fd] + data
            if fd not in opened and b": stream open" in buf:
                opened.add(fd)
            if record:
                kernel = read
                for level, kind, raw in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", raw[:16])
                        kernel = sec * 1_000_000_000 + nsec
                while marker in buf:
                    _head, _sep, rest = buf.partition(marker)
                    if b"\n\n" not in rest:
                        break
                    event, _sep, buf = rest.partition(b"\n\n")
                    for series in json.loads(event)["series"]:
                        arrivals.extend((row[0], kernel, read) for row in series["values"])
            bufs[fd] = buf[-4096:] if marker not in buf else buf
        if not ready_sent and len(opened) == len(queries):
            conn.send("ready")
            ready_sent = True
    conn.send(arrivals)
    for s in socks.values():
        s.close()


def _start(port, queries, record):
    parent, child = mp.Pipe()
    p = mp.Process(target=subscribers_main, args=(port, queries, child, record), daemon=True)
    p.start()
    if not parent.poll(120):
        raise SystemExit("subscribers did not connect in time")
    assert parent.recv() == "ready"
    return p, parent


def start_latency_subscribers(port, active):
    return _start(port, ["SELECT v FROM lat"] * active, record=True)


def start_subscribers(port, active, idle, per_host=False):
    return _start(port, [_active_query(i, per_host) for i in range(active)]
                  + ["SELECT v FROM nobody"] * idle, record=False)


def stop_subscribers(p, conn):
    conn.send("stop")
    arrivals = conn.recv() if conn.poll(60) else []
    p.join(10)
    if p.is_alive():
        p.terminate()
    return arrivals


# -- writers ------------------------------------------------------------------------------------

def write(conn, body: bytes, db: str = "bench") -> None:
    conn.request("POST", f"/write?db={db}", body=body)
    r = conn.getresponse()
    r.read()
    if r.status != 204:
        raise SystemExit(f"write failed: {r.status}")


BODIES_PER_WRITER = 40


def ingest(port: int, seconds: float, writers: int = 2, lines: int = 5000,
           latencies: list | None = None, db: str = "bench") -> float:
    """values/s written; each request's round trip (ms) is appended to ``latencies``."""
    total = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    # Bodies are built before the clock starts (and then sent in turn; repeats overwrite the same
    # points), so the writers' own CPU is the HTTP requests, not string building.
    bodies = [[("\n".join(f"load,host=h{i % 100} v={i}" + f" {w * 10**15 + b * lines + i}"
                           for i in range(lines))).encode() for b in range(BODIES_PER_WRITER)]
              for w in range(writers)]
    stop = time.monotonic() + seconds

    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        k = 0
        while time.monotonic() < stop:
            body = bodies[w][k % BODIES_PER_WRITER]
            k += 1
            t0 = time.perf_counter()
            write(conn, body, db)
            if latencies is not None:
                latencies.append((time.perf_counter() - t0) * 1000)
            n += lines
        with lock:
            total[0] += n

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return total[0] / (time.monotonic() - t0)


def interleaved(srv, args) -> None:
    """Ingest with and without the streams, measured in short phases that alternate on *one*
    set of open streams: the 1,000 idle and 100 per-host streams stay open on database
    ``bench``, and the writers write either there (with) or to database ``bench_none`` (none:
    no stream of that database, so nothing is forwarded or streamed). Each round is one phase
    of each (their order alternating), ``--interleaved-seconds`` each after a short pause; the
    ratio is the median of the rounds' ratios. Ingest alone on this machine moves by a quarter
    from one few-second span to the next (fsync latency), and phases seconds apart with a
    reconnect of 1,100 streams in between kept a run's rounds 0.3 apart; short neighbouring
    phases see nearly the same machine."""
    srv.query("CREATE DATABASE bench_none")
    pid = srv.proc.pid
    p, c = start_subscribers(srv.port, args.subscribers, args.idle, per_host=True)
    try:
        ingest(srv.port, args.warmup)
        ingest(srv.port, args.warmup, db="bench_none")
        secs = args.interleaved_seconds
        ratios, cpu, done = [], {"bench": 0.0, "bench_none": 0.0}, {"bench": 0.0, "bench_none": 0.0}
        d0, x0 = pubsub_counts(srv)
        for r in range(args.interleaved_rounds):
            got = {}
            for db in (("bench_none", "bench") if r % 2 == 0 else ("bench", "bench_none")):
                time.sleep(0.2)             # the last tick of a phase with streams ends
                s0 = tree_cpu_s(pid)
                got[db] = ingest(srv.port, secs, db=db)
                cpu[db] += tree_cpu_s(pid) - s0
                done[db] += got[db] * secs
            ratios.append(got["bench"] / got["bench_none"])
        time.sleep(0.5)
        d1, x1 = pubsub_counts(srv)
    finally:
        stop_subscribers(p, c)
    print(f"ingest   interleaved on open streams ({args.idle} idle + {args.subscribers} active, one host "
          f"each; {args.interleaved_rounds} rounds of {secs:g} s phases): ratio={statistics.median(ratios):.2f} "
          f"(median of the rounds' ratios; quartiles {pct(ratios, 0.25):.2f} - {pct(ratios, 0.75):.2f}; "
          f"values written with / without {done['bench'] / done['bench_none']:.2f}); server CPU per "
          f"million values {cpu['bench_none'] / done['bench_none'] * 1e9:.0f} ms without, "
          f"{cpu['bench'] / done['bench'] * 1e9:.0f} ms with (server and stream process); points to subscriber queues "
          f"{d1 - d0:,.0f}, dropped {x1 - x0:,.0f}", flush=True)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--points", type=int, default=300, help="latency: points written one by one")
    ap.add_argument("--seconds", type=float, default=5.0, help="ingest: seconds per measurement")
    ap.add_argument("--stall-seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=5,
                    help="ingest: alternated phases without and with subscribers")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="ingest: unmeasured seconds of writes before each measured phase")
    ap.add_argument("--interleaved-rounds", type=int, default=20,
                    help="ingest: rounds of the interleaved measurement on one set of open streams (0: skip)")
    ap.add_argument("--interleaved-seconds", type=float, default=1.5)
    ap.add_argument("--interleaved-only", action="store_true", help="only the interleaved measurement")
    ap.add_argument("--latency-only", action="store_true", help="only the latency phase")
    ap.add_argument("--per-host-only", action="store_true",
                    help="ingest: only the one-host-each phase (then the stall)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-stream-")
    srv = ServerProcess(os.path.join(tmp, "data"), auth=False).start()
    try:
        srv.query("CREATE DATABASE bench")
        pid = srv.proc.pid
        if args.interleaved_only:
            interleaved(srv, args)
            return

        # 1. latency
        p, c = start_latency_subscribers(srv.port, args.subscribers)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        returned = {}
        for i in range(args.points):
            t = time.time_ns()
            write(conn, f"lat v={i} {t}".encode())
            returned[t] = time.time_ns()
            time.sleep(0.005)
        time.sleep(0.5)
        arrivals = stop_subscribers(p, c)
        expected = args.points * args.subscribers
        arrived = [(kernel - returned[t]) / 1e6 for t, kernel, _read in arrivals if t in returned]
        read = [(r - returned[t]) / 1e6 for t, _kernel, r in arrivals if t in returned]
        print(f"latency  subscribers={args.subscribers} deliveries={len(arrived)}/{expected}: the write's 204 "
              f"-> the event at the subscriber's socket (kernel receive time) p50={pct(arrived, 0.5):.2f} ms "
              f"p99={pct(arrived, 0.99):.2f} ms max={max(arrived, default=0):.2f} ms", flush=True)
        # The same events as the one subscriber process's Python read them: it serves all 100
        # sockets in turn, so the later sockets' reads wait for its work on the earlier ones.
        print(f"         ... read by the subscriber process p50={pct(read, 0.5):.2f} ms "
              f"p99={pct(read, 0.99):.2f} ms", flush=True)
        # The /write round trip itself: the delivery latency above counts from its 204, so a
        # server that answers the 204 sooner shows a larger delivery latency for the same events.
        rtt = [(returned[t] - t) / 1e6 for t in returned]
        sent = [(k - t) / 1e6 for t, k, _r in arrivals]
        print(f"         /write round trip meanwhile p50={pct(rtt, 0.5):.2f} ms p99={pct(rtt, 0.99):.2f} ms; "
              f"sending the write -> the event at the socket p50={pct(sent, 0.5):.2f} ms "
              f"p99={pct(sent, 0.99):.2f} ms", flush=True)
        if args.latency_only:
            return

        # 2. ingest with and without subscribers
        # CPU per process is printed too: the writers, the server and the subscribers share the
        # same cores, so a ratio below 1 is partly the subscriber process's own CPU.
        # Phases without and with subscribers alternate (--rounds of each), and the ratio is the
        # median of the rounds' ratios: ingest alone moves by +-10 % from one phase to the next
        # here (fsync latency on this disk), so one phase of each gave ratios 0.1 apart run to run.
        phases = ((True, "one host each"),) if args.per_host_only else \
            ((True, "one host each"), (False, "everything each"))
        for per_host, label in phases:
            ratios, bases, loadeds, wl0, wl1 = [], [], [], [], []
            cpu0 = cpu1 = sub_cpu = delivered = dropped = 0.0
            for _r in range(args.rounds):
                # Each measured phase follows --warmup seconds of the same writes, unmeasured:
                # closing or opening 1,100 streams leaves the server and its stream process
                # work (ending sessions, collecting garbage) that is not the steady state.
                ingest(srv.port, args.warmup)
                s0 = tree_cpu_s(pid)
                base = ingest(srv.port, args.seconds, latencies=wl0)
                cpu0 += tree_cpu_s(pid) - s0
                p, c = start_subscribers(srv.port, args.subscribers, args.idle, per_host=per_host)
                ingest(srv.port, args.warmup)
                s0, c0 = tree_cpu_s(pid), cpu_s(p.pid)
                d0, x0 = pubsub_counts(srv)
                loaded = ingest(srv.port, args.seconds, latencies=wl1)
                s1, c1 = tree_cpu_s(pid), cpu_s(p.pid)
                time.sleep(0.5)             # the last batches reach the queues
                d1, x1 = pubsub_counts(srv)
                stop_subscribers(p, c)
                cpu1 += s1 - s0
                sub_cpu += c1 - c0
                delivered += d1 - d0
                dropped += x1 - x0
                bases.append(base)
                loadeds.append(loaded)
                ratios.append(loaded / base)
            span = args.seconds * args.rounds
            print(f"ingest   none={statistics.median(bases):,.0f} values/s  (server CPU {cpu0 / span:.2f} "
                  f"cores; /write p50 {pct(wl0, 0.5):.1f} ms p90 {pct(wl0, 0.9):.1f} ms)", flush=True)
            print(f"ingest   with {args.idle} idle + {args.subscribers} active ({label})="
                  f"{statistics.median(loadeds):,.0f} values/s  ratio={statistics.median(ratios):.2f} "
                  f"(median of {args.rounds} alternated rounds: "
                  f"{' '.join(f'{r:.2f}' for r in ratios)}; server CPU {cpu1 / span:.2f} cores, "
                  f"subscriber process {sub_cpu / span:.2f} cores; /write p50 {pct(wl1, 0.5):.1f} ms "
                  f"p90 {pct(wl1, 0.9):.1f} ms)", flush=True)
            # A ratio bought by dropping points would be no ratio: say how many were dropped.
            print(f"         points to subscriber queues {delivered:,.0f}, dropped {dropped:,.0f} "
                  f"({dropped / max(1.0, delivered + dropped):.1%})", flush=True)

        # 2b. the same, interleaved on one set of connections
        if args.interleaved_rounds:
            interleaved(srv, args)

        # 3. a stalled subscriber
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /stream?db=bench&q=SELECT+v+FROM+load HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(256)  # the status line: the stream is open; from now on nobody reads
        ingest(srv.port, 1.0)
        before = tree_rss_kb(pid)
        ingest(srv.port, args.stall_seconds)
        after = tree_rss_kb(pid)
        print(f"stall    {args.stall_seconds:.0f} s of writes with one stalled subscriber: server RSS "
              f"{before / 1024:.0f} MiB -> {after / 1024:.0f} MiB")
        s.close()
        st, _h, body = srv.request("GET", "/metrics", key=None)
        dropped = [ln for ln in body.decode().splitlines() if ln.startswith("chronosdb_pubsub_points_dropped")]
        print("         " + (dropped[0] if dropped else "no drops counted"))
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
