"""Joining a process group of CPU processes on this machine (gloo), as the 2-process tests' workers do.

Imported as ``from gloo_group import ...``: pytest puts ``tests/`` on ``sys.path`` (the root conftest
lives there), and ``torch.multiprocessing.spawn`` hands that path on to its workers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gloo_group(rank: int, world: int, port: int) -> Iterator[None]:
    """Be rank ``rank`` of a ``world``-process gloo group meeting at 127.0.0.1:``port``, on one thread
    (the cores are shared); the group is destroyed on the way out, whatever happened inside."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()
