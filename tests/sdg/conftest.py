"""The scripted teacher as fixtures: `teachers(**kwargs)` starts as many as a test needs, `teacher` is one."""

from __future__ import annotations

import pytest

from tests.sdg.teacher import start_teacher


@pytest.fixture
def teachers():
    servers = []

    def start(**kwargs):
        server = start_teacher(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def teacher(teachers):
    return teachers()
