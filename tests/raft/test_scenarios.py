"""Data-driven Raft scenarios: tests/raft/testdata/*.txt.

Each file is a script for the hand-driven cluster (chronosdb.cluster.sim.scripted; the command
language is described there). A line ``> command`` runs a command; the lines after it, up to the
next command, are the output it must print (messages delivered, status, errors, and any
"VIOLATION:" the safety monitor reports). Lines starting with ``#`` and blank lines are comments.

When the core's behaviour changes on purpose, regenerate the expected output and review the diff:

    CHRONOSDB_REWRITE=1 python -m pytest tests/raft/test_scenarios.py
"""

import os
from pathlib import Path

import pytest

from chronosdb.cluster.sim.scripted import ScriptedCluster

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


def parse(text: str) -> list[tuple[list[str], str, list[str]]]:
    """-> [(comment lines before the command, command, expected output lines)]"""
    blocks, comments, cmd, expected = [], [], None, []
    for line in text.splitlines():
        if line.startswith("> "):
            if cmd is not None:
                blocks.append((comments, cmd, expected))
                comments, expected = [], []
            cmd = line[2:].strip()
        elif line.startswith("#") or not line.strip():
            # a comment ends the previous command's output and belongs before the next one
            if cmd is not None:
                blocks.append((comments, cmd, expected))
                comments, cmd, expected = [], None, []
            comments.append(line)
        else:
            if cmd is None:
                raise ValueError(f"output line before any command: {line!r}")
            expected.append(line)
    if cmd is not None:
        blocks.append((comments, cmd, expected))
    elif comments:
        blocks.append((comments, None, []))
    return blocks


def run(path: Path) -> tuple[str, str]:
    text = path.read_text()
    c = ScriptedCluster(seed=0)
    out = []
    for comments, cmd, _ in parse(text):
        out.extend(comments)
        if cmd is not None:
            out.append("> " + cmd)
            out.extend(c.run_command(cmd))
    return text, "\n".join(out) + "\n"


def test_there_are_enough_scenarios():
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path):
    expected, actual = run(path)
    if os.environ.get("CHRONOSDB_REWRITE") == "1":
        if actual != expected:
            path.write_text(actual)
        return
    assert actual == expected, (
        f"{path.name}: transcript differs; if the change is intended, regenerate with "
        f"CHRONOSDB_REWRITE=1 and review the diff")
