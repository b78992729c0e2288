"""Run the seeded Raft simulation: ``python -m chronosdb.cluster.sim --seeds N [--start S]
[--nodes 3|5]`` runs seeds S..S+N-1 and prints seeds/s; ``--seed N`` replays one seed and
prints its statistics. Every failing seed is printed with the command that replays it, and the
exit status is 1 when any seed failed.

Fault injections for checking the checker (test-only): ``--unsafe-commit-prior-terms``,
``--unsafe-vote-without-log-check``.
"""

from __future__ import annotations

import argparse
import sys
import time

from chronosdb.cluster.sim.cluster import SimParams, Simulation, SimulationFailure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chronosdb.cluster.sim",
                                 description="deterministic Raft simulation")
    ap.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, help="replay this one seed, verbosely")
    ap.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    ap.add_argument("--steps", type=int, default=SimParams.steps)
    ap.add_argument("--unsafe-commit-prior-terms", action="store_true")
    ap.add_argument("--unsafe-vote-without-log-check", action="store_true")
    ap.add_argument("--max-failures", type=int, default=10, help="stop after this many")
    a = ap.parse_args(argv)

    raft = dict(SimParams().raft)
    if a.unsafe_commit_prior_terms:
        raft["unsafe_commit_prior_terms"] = True
    if a.unsafe_vote_without_log_check:
        raft["unsafe_vote_without_log_check"] = True
    flags = "".join(f" --{k.replace('_', '-')}" for k in ("unsafe_commit_prior_terms",
                                                            "unsafe_vote_without_log_check")
                    if raft.get(k))

    seeds = [a.seed] if a.seed is not None else range(a.start, a.start + a.seeds)
    failures = inconclusive = 0
    t0 = time.perf_counter()
    n = 0
    for seed in seeds:
        sim = Simulation(seed, SimParams(nodes=a.nodes, steps=a.steps, raft=raft,
                                         trace=a.seed is not None))
        n += 1
        try:
            stats = sim.run()
        except SimulationFailure as e:
            failures += 1
            print(f"FAIL {e}{flags}", flush=True)
            if failures >= a.max_failures:
                break
            continue
        inconclusive += stats["lincheck_inconclusive"]
        if a.seed is not None:
            print(f"seed {seed} ok: {stats}, committed {len(sim.committed)} entries, "
                  f"{len(sim.history)} client ops checked, trace {sim.trace_digest()}")
    dt = time.perf_counter() - t0
    print(f"{n} seeds ({a.nodes} nodes) in {dt:.1f} s = {n / dt:.1f} seeds/s; "
          f"{failures} failed" + (f", {inconclusive} linearizability checks over budget"
                                  if inconclusive else ""), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
