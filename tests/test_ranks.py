"""ablate.ranks: a process no launcher started can become the only rank of a one-process job."""

from __future__ import annotations

import os

from ablate.ranks import join_one_process_world

LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def test_a_process_without_a_launcher_gets_a_one_process_world(monkeypatch):
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("atexit.register", lambda fn: None)  # this test process joins no group
    assert join_one_process_world() is True
    env = {name: os.environ[name] for name in LAUNCHER_ENV}
    assert {k: v for k, v in env.items() if k != "MASTER_PORT"} == {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    assert 0 < int(env["MASTER_PORT"]) < 65536
    assert join_one_process_world() is False and os.environ["MASTER_PORT"] == env["MASTER_PORT"]


def test_a_launched_rank_keeps_its_launchers_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert join_one_process_world() is False
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"]) == ("3", "8")
