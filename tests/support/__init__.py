"""Test support: waiting helpers, an in-process server, the CLI as a subprocess, fake platform servers."""

from tests.support.cli import Running, cli_env, pontibot, pontibot_serving, start_pontibot, until_healthy
from tests.support.server import free_port, serve
from tests.support.waiting import eventually, nothing_arrives, settle

__all__ = [
    "Running",
    "cli_env",
    "eventually",
    "free_port",
    "nothing_arrives",
    "pontibot",
    "pontibot_serving",
    "serve",
    "settle",
    "start_pontibot",
    "until_healthy",
]
