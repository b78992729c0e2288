"""``chronosdb query 'SELECT ...'`` (the ordinary answer as a table) and ``chronosdb query
--follow 'SELECT ...'`` (a live stream from ``/stream`` printed as it arrives).

Formatting is pure (``format_series`` returns lines); the network part reads the Server-Sent
Events of /stream line by line. When the connection drops, ``--follow`` reconnects with
``Last-Event-ID`` so no stored point is skipped (see docs/streaming.md for what that promises).
"""
from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlencode

from chronosdb.cli.client import CliClient, CliError

RECONNECT_SECONDS = 1.0


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def format_series(series: list[dict], header: bool = True) -> list[str]:
    """Rows of InfluxDB-shaped series as aligned text lines, one block per series."""
    lines: list[str] = []
    for s in series:
        cols = s.get("columns", [])
        rows = [[_cell(v) for v in r] for r in s.get("values", [])]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
        if header:
            tags = ",".join(f"{k}={v}" for k, v in sorted((s.get("tags") or {}).items()))
            lines.append(f"name: {s.get('name', '')}" + (f"  tags: {tags}" if tags else ""))
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
            lines.append("  ".join("-" * w for w in widths))
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        if header:
            lines.append("")
    return lines


def run_query(client: CliClient, db: str | None, rp: str | None, q: str, epoch: str | None,
              out=sys.stdout) -> int:
    params = {"q": q}
    for k, v in (("db", db), ("rp", rp), ("epoch", epoch)):
        if v:
            params[k] = v
    doc = json.loads(client.request("POST", "/query?" + urlencode(params)))
    status = 0
    for res in doc.get("results", []):
        if "error" in res:
            print(f"error: {res['error']}", file=sys.stderr)
            status = 1
            continue
        for line in format_series(res.get("series", [])):
            print(line, file=out)
    return status


def _open(client: CliClient, params: dict, last_id: str | None):
    cls = http.client.HTTPSConnection if client.scheme == "https" else http.client.HTTPConnection
    conn = cls(client.netloc, timeout=None)
    h = {"Accept": "text/event-stream"}
    if client.key:
        h["Authorization"] = f"Token {client.key}"
    if last_id:
        h["Last-Event-ID"] = last_id
    conn.request("GET", "/stream?" + urlencode(params), headers=h)
    resp = conn.getresponse()
    if resp.status != 200:
        body = resp.read()
        try:
            msg = json.loads(body)["error"]
        except Exception:
            msg = body.decode(errors="replace")[:500]
        raise CliError(f"{resp.status}: {msg}")
    return conn, resp


def follow(client: CliClient, db: str, rp: str | None, q: str, epoch: str | None,
           history: bool, partial: bool, out=sys.stdout, max_events: int | None = None) -> int:
    """Print events until interrupted (or ``max_events`` data events, for tests)."""
    params = {"db": db, "q": q}
    for k, v in (("rp", rp), ("epoch", epoch)):
        if v:
            params[k] = v
    if history:
        params["history"] = "true"
    if partial:
        params["partial"] = "true"
    last_id, shown, printed_header = None, 0, set()
    while True:
        try:
            conn, resp = _open(client, params, last_id)
        except (OSError, http.client.HTTPException) as e:
            print(f"(stream unavailable: {e}; retrying)", file=sys.stderr)
            time.sleep(RECONNECT_SECONDS)
            continue
        event, data, ident = None, None, None
        try:
            while True:
                raw = resp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and event is not None:
                    if ident is not None:
                        last_id = ident
                    if event == "error":
                        raise CliError(f"stream closed by the server: {data.get('error')}")
                    if event == "dropped":
                        print(f"({data['missed']} points missed: this terminal was too slow)", file=out)
                    else:
                        for s in data.get("series", []):
                            k = (s.get("name"), tuple(sorted((s.get("tags") or {}).items())), event)
                            lines = format_series([s], header=k not in printed_header)
                            printed_header.add(k)
                            if event == "partial":
                                lines = [f"~ {ln}" for ln in lines if ln]
                            for ln in lines:
                                print(ln, file=out)
                        out.flush()
                        shown += 1
                        if max_events is not None and shown >= max_events:
                            return 0
                    event, data, ident = None, None, None
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        print("(connection lost; resuming)", file=sys.stderr)
        time.sleep(RECONNECT_SECONDS)


def cmd_query(args) -> int:
    client = CliClient.from_args(args.host, args.key, args.data_dir)
    if args.follow:
        if not args.db:
            raise CliError("--follow needs --db")
        return follow(client, args.db, args.rp, args.q, args.epoch, args.history, args.partial)
    return run_query(client, args.db, args.rp, args.q, args.epoch)


def add_query_parser(sub, client_flags) -> None:
    qp = sub.add_parser("query", help="run an InfluxQL query; --follow streams new points live")
    client_flags(qp)
    qp.add_argument("--db", default=None)
    qp.add_argument("--rp", default=None)
    qp.add_argument("--epoch", default=None, choices=("ns", "u", "ms", "s", "m", "h"))
    qp.add_argument("--follow", "-f", action="store_true",
                    help="keep the connection open and print new points (or closed windows)")
    qp.add_argument("--history", action="store_true", help="with --follow: first the stored answer")
    qp.add_argument("--partial", action="store_true",
                    help="with --follow and GROUP BY time: running values of the open window")
    qp.add_argument("q", help="the query")
    qp.set_defaults(func=cmd_query)
