import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from serverproc import ServerProcess  # noqa: E402


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(auth=True, udp=[...]) -> a running ServerProcess, stopped after."""
    started = []

    def factory(data_dir=None, **kw):
        d = data_dir or str(tmp_path / f"data{len(started)}")
        s = ServerProcess(d, **kw).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.kill()


@pytest.fixture
def server(start_server):
    return start_server(auth=False)
