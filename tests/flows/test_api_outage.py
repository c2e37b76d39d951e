"""The Prefect API outage budget is one per outage, shared by every caller of a process: once
spent, later calls give up at once, and the first answer from the API gives it back; an error
of the work itself while the API is up is never waited out."""

from __future__ import annotations

import httpx
import pytest

from flows import generate_window as gw


class Server:
    """A callable that refuses connections until told otherwise, counting the calls."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def __call__(self, value: int) -> int:
        self.calls += 1
        if not self.up:
            raise httpx.ConnectError("All connection attempts failed")
        return value


def test_one_budget_per_outage_across_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gw, "API_OUTAGE_S", 0.2)
    monkeypatch.setattr(gw, "POLL_S", 0.02)
    monkeypatch.setattr(gw, "OUTAGE", gw.ApiOutage())
    server = Server()
    with pytest.raises(httpx.ConnectError):
        gw.through_api_outage(server, 1, is_down=lambda: not server.up)
    assert server.calls > 2  # the first caller waited the outage out, retrying
    server.calls = 0
    with pytest.raises(httpx.ConnectError):
        gw.through_api_outage(server, 2, is_down=lambda: not server.up)
    assert server.calls == 1  # the budget is spent: the next one gives up at once
    server.up = True
    assert gw.through_api_outage(server, 3, is_down=lambda: not server.up) == 3  # the API answers: the outage is over
    server.up, server.calls = False, 0
    with pytest.raises(httpx.ConnectError):
        gw.through_api_outage(server, 4, is_down=lambda: not server.up)
    assert server.calls > 2  # a new outage gets a new budget


def test_the_work_s_own_errors_are_not_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mux whose output directory cannot be made raises NotADirectoryError, an OSError like a
    refused socket: with the API answering, it is the asset's error, raised at once."""
    monkeypatch.setattr(gw, "OUTAGE", gw.ApiOutage())
    calls = []

    def mux() -> None:
        calls.append(1)
        raise NotADirectoryError("[Errno 20] Not a directory: 'not-a-dir/out'")

    with pytest.raises(NotADirectoryError):
        gw.through_api_outage(mux, is_down=lambda: False)
    assert calls == [1]


def test_a_refused_socket_is_waited_out_while_the_api_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gw, "OUTAGE", gw.ApiOutage())
    monkeypatch.setattr(gw, "POLL_S", 0.01)
    tries = []

    def start_subflow() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "started"

    assert gw.through_api_outage(start_subflow, is_down=lambda: len(tries) < 3) == "started"
    assert len(tries) == 3
