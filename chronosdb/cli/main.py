"""The ``chronosdb`` command line.

    chronosdb serve [--data-dir DIR] [--http HOST:PORT] [--udp HOST:PORT=DATABASE ...]
                    [--no-auth] [--wal-fsync always|batch|none] [--config FILE]
                    [--node-id N --rpc HOST:PORT (--peers ID=HOST:PORT,... | --join HOST:PORT)
                     --cluster-secret S [--raft-snapshot-every N]]
    chronosdb cluster status                  members, leader, term, commit and lag
    chronosdb write --db DB [FILE|-]          line protocol to a server, with progress
    chronosdb keys create|list|revoke ...     API key management
    chronosdb version

Client commands talk to ``--host`` (default http://127.0.0.1:8086) with the key from ``--key``,
``$CHRONOSDB_KEY``, or ``<data-dir>/admin.key`` (default data dir ./chronosdb-data).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import chronosdb
from chronosdb.cli.client import CliClient, CliError


def _cmd_version(args) -> int:
    print(f"chronosdb {chronosdb.__version__}")
    return 0


def _cmd_serve(args) -> int:
    from chronosdb.server.app import run
    from chronosdb.server.config import ConfigError, ServerConfig

    try:
        cfg = ServerConfig.from_sources(args, args.config)
    except ConfigError as e:
        print(f"chronosdb serve: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("CHRONOSDB_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    return run(cfg)


def _client(args) -> CliClient:
    return CliClient.from_args(args.host, args.key, args.data_dir)


def _cmd_write(args) -> int:
    client = _client(args)
    src = sys.stdin.buffer if args.file in (None, "-") else open(args.file, "rb")
    try:
        total = os.fstat(src.fileno()).st_size if src is not sys.stdin.buffer else 0
        client.write_stream(src, args.db, args.rp, args.precision, args.batch_lines, total,
                            progress=not args.quiet)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    return 0


def _cmd_keys(args) -> int:
    client = _client(args)
    if args.keys_command == "create":
        body = {"admin": True} if args.admin else {"database": args.db, "scope": args.scope}
        if args.description:
            body["description"] = args.description
        if not args.admin and not args.db:
            raise CliError("keys create: --db is required (or --admin)")
        doc = client.request_json("POST", "/api/keys", body)
        print(f"id:    {doc['id']}\nscope: {doc['scope']} on {doc['database'] or '(all databases)'}\n"
              f"key:   {doc['key']}\n(the key is shown only now; store it)")
    elif args.keys_command == "list":
        path = "/api/keys" + (f"?database={args.db}" if args.db else "")
        doc = client.request_json("GET", path)
        print(f"{'ID':14s} {'SCOPE':10s} {'DATABASE':20s} DESCRIPTION")
        for k in doc["keys"]:
            print(f"{k['id']:14s} {k['scope']:10s} {(k['database'] or '*'):20s} {k['description']}")
    elif args.keys_command == "revoke":
        client.request("DELETE", f"/api/keys/{args.id}")
        print(f"revoked {args.id}")
    return 0


def _cmd_compact(args) -> int:
    _client(args).request("POST", "/api/compact")
    print("compacted")
    return 0


def _cmd_cluster_status(args) -> int:
    doc = _client(args).request_json("GET", "/api/cluster/status")
    if args.json:
        import json
        print(json.dumps(doc, indent=2))
        return 0
    print(render_cluster_status(doc))
    return 0


def render_cluster_status(doc: dict) -> str:
    """The status document of ``GET /api/cluster/status`` as a table."""
    n = doc["node"]
    leader = n.get("leader") or 0
    lines = [f"node {n['id']} ({n['role']})  leader: {leader or 'none'}  term: {n.get('term')}  "
             f"commit: {n.get('commit')}  applied: {n.get('applied')}  snapshot: {n.get('snapshot_index')}",
             "",
             f"{'ID':>4}  {'ROLE':8s}  {'RPC':22s}  {'HTTP':22s}  {'MATCH':>7}  {'LAG':>5}  LINK"]
    followers = {int(k): v for k, v in (n.get("followers") or {}).items()}
    peers = {int(k): v for k, v in doc.get("transport", {}).get("peers", {}).items()}
    members = {m["id"]: m for m in n.get("members", [])}
    ids = sorted(set(members) | set(n.get("voters", [])) | set(n.get("learners", [])))
    for i in ids:
        m = members.get(i, {})
        role = ("leader" if i == leader else "voter") if i in n.get("voters", []) else \
            ("learner" if i in n.get("learners", []) else "member")
        f = followers.get(i)
        match = "-" if f is None else str(f["match"])
        lag = "-" if f is None else str(f["lag"])
        link = "self" if i == n["id"] else ("up" if peers.get(i, {}).get("connected") else "down")
        lines.append(f"{i:>4}  {role:8s}  {m.get('rpc', '?'):22s}  {m.get('http', '?'):22s}  {match:>7}  {lag:>5}  {link}")
    if not followers:
        lines.append("(lag is known on the leader only; ask the leader's --host for it)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chronosdb", description="ChronosDB time-series database")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_cmd_version)

    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--data-dir", default=None, help="data directory (default ./chronosdb-data)")
    s.add_argument("--http", default=None, metavar="HOST:PORT", help="HTTP listen address (default 127.0.0.1:8086)")
    s.add_argument("--udp", action="append", default=[], metavar="HOST:PORT=DATABASE",
                   help="UDP line-protocol listener into DATABASE (repeatable)")
    s.add_argument("--no-auth", action="store_true", help="accept every request without a key (development)")
    s.add_argument("--wal-fsync", choices=("always", "batch", "none"), default=None,
                   help="when a write is acknowledged: after fsync (always, default), or sooner")
    s.add_argument("--config", default=None, metavar="FILE", help="TOML file with the same settings")
    s.add_argument("--node-id", type=int, default=None, metavar="N",
                   help="run as member N of a meta cluster (default: single node, no Raft)")
    s.add_argument("--rpc", default=None, metavar="HOST:PORT", help="Raft listen address (cluster)")
    s.add_argument("--peers", default=None, metavar="ID=HOST:PORT,...",
                   help="founding members with their Raft addresses, this node included (same on every founder)")
    s.add_argument("--join", default=None, metavar="HOST:PORT",
                   help="join an existing cluster through a member's HTTP address")
    s.add_argument("--cluster-secret", default=None, metavar="S",
                   help="shared secret of the cluster's internal calls (or $CHRONOSDB_CLUSTER_SECRET)")
    s.add_argument("--raft-snapshot-every", type=int, default=None, metavar="N",
                   help="snapshot the meta state every N applied entries (default 1000)")
    s.set_defaults(func=_cmd_serve)

    def client_flags(sp):
        sp.add_argument("--host", default=os.environ.get("CHRONOSDB_HOST", "http://127.0.0.1:8086"))
        sp.add_argument("--key", default=os.environ.get("CHRONOSDB_KEY"), help="API key (default: <data-dir>/admin.key)")
        sp.add_argument("--data-dir", default="./chronosdb-data", help="where to find admin.key")

    w = sub.add_parser("write", help="write a line-protocol file to a server")
    client_flags(w)
    w.add_argument("--db", required=True)
    w.add_argument("--rp", default=None)
    w.add_argument("--precision", default="ns", choices=("ns", "u", "ms", "s", "m", "h"))
    w.add_argument("--batch-lines", type=int, default=5000)
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.add_argument("file", nargs="?", default="-", help="line-protocol file, or - for stdin")
    w.set_defaults(func=_cmd_write)

    c = sub.add_parser("compact", help="snapshot caches and fully compact every shard now (admin)")
    client_flags(c)
    c.set_defaults(func=_cmd_compact)

    from chronosdb.cli.follow import add_query_parser
    add_query_parser(sub, client_flags)

    cl = sub.add_parser("cluster", help="the meta cluster (admin key needed)")
    cls_ = cl.add_subparsers(dest="cluster_command", required=True)
    cst = cls_.add_parser("status", help="members, leader, term, commit, applied and follower lag")
    client_flags(cst)
    cst.add_argument("--json", action="store_true", help="print the raw status document")
    cst.set_defaults(func=_cmd_cluster_status)

    k = sub.add_parser("keys", help="manage API keys (admin key needed)")
    ks = k.add_subparsers(dest="keys_command", required=True)
    kc = ks.add_parser("create", help="create a key; prints it once")
    client_flags(kc)
    kc.add_argument("--db", default=None)
    kc.add_argument("--scope", choices=("read", "write", "readwrite"), default="readwrite")
    kc.add_argument("--admin", action="store_true", help="create another admin key")
    kc.add_argument("--description", default="")
    kl = ks.add_parser("list", help="list keys (never the keys themselves)")
    client_flags(kl)
    kl.add_argument("--db", default=None)
    kr = ks.add_parser("revoke", help="revoke a key by id")
    client_flags(kr)
    kr.add_argument("id")
    k.set_defaults(func=_cmd_keys)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"chronosdb {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
