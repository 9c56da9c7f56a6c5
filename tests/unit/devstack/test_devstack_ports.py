"""Free-port helpers shared by `mlfleet up` and the integration tests' servers."""

from __future__ import annotations

import socket

from mlfleet.devstack.ports import HOST, free_port, port_free


def test_free_port_is_free_and_taken_once_something_listens() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert port_free(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((HOST, port))
        server.listen()
        assert not port_free(port)
        assert not port_free(port, HOST)
    assert port_free(port)  # SO_REUSEADDR: a just-closed listener does not count


def test_a_port_taken_on_every_interface_is_taken_on_loopback_too() -> None:
    port = free_port("")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("", port))
        server.listen()
        assert not port_free(port, "")
        assert not port_free(port)
