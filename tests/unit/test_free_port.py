"""etcdwamp.testing.free_port: a port free a moment ago, never handed out twice in a row."""

from __future__ import annotations

import socket

from etcdwamp.testing._processes import free_port


def test_ports_handed_out_are_distinct_though_none_is_bound_yet() -> None:
    """Servers bind their ports later: 500 picks without binding any are all different
    (500 random picks from 12,000 ports repeat one almost surely; two members of one
    cluster given the same port fail with "address already in use")."""
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == 500
    assert all(20000 <= port < 32000 for port in ports)


def test_a_port_handed_out_can_be_bound() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
