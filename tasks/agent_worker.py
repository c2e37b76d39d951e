"""Prefect's task worker, taking a window off the server's queue only when it has room for it,
and outliving a restart of the Prefect server.

Prefect 3.8's ``TaskWorker`` reads its subscription websocket ahead of its concurrency limit:
it receives and acknowledges the next scheduled task run, then waits for a free slot. With one
window at a time, a GPU agent therefore always holds one more window than it runs, and when the
agent is killed that acknowledged window is lost: the server's queue lives in its memory and
redelivers only what was never acknowledged; the task run stays SCHEDULED forever (measured:
tests/flows/test_gpu_agent_faults.py hung on exactly that). Here a slot is taken *before* the
next message is read, so the acknowledgement (sent when a message is read) happens only once
the window can start. A run the server has sent but this agent has not yet acknowledged goes
back to the queue when the agent's connection drops (the server's NORMAL_DISCONNECT path
retries it), and another agent gets it.

A server restart. Prefect's ``Subscription`` retries refused connections and abnormal closes
by itself, silently; a handshake refused while the server starts (HTTP 502/503), a timeout or a
normal close (code 1000/1001) end it, and with it the agent (read in its code; the restarts
measured in benchmarks/bench_agent_faults.py gave refused connections). Here the subscription
is this module's own (the same protocol: auth, subscribe with the task keys and client id,
then one ``ack`` per run read): any transport error closes the socket and opens a new one,
waiting 0.5 s, doubling up to 5 s, until the server answers; the window in progress is not
touched (it needs the server only for its state events). And the agent *knows* it was cut
off: once subscribed again it calls ``on_reconnect(lost_at, back_at)``, which the agent turns
into a record in the shared data dir (tasks/window_lease.py), because the restarted server's
queue is empty and the windows it had queued must be deferred again by their callers
(flows/generate_window.py). An authentication refusal is not a transport error and still ends
the agent (a configuration problem, not an outage).

A run delivered whose state is already final (its caller marked it Crashed and deferred the
window again, e.g. after an outage) is skipped: running it would do the window twice at once.

The rest (executing a run in the engine, the thread pool, the limit's bookkeeping, stopping)
is ``TaskWorker``'s own; only the subscription loop differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets.exceptions
from prefect._internal.websockets import websocket_connect
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import TaskRun
from prefect.logging import get_logger
from prefect.settings import get_current_settings
from prefect.task_worker import TaskWorker

logger = get_logger("stepfoley.agent_worker")

# Waits between reconnection attempts: from FIRST_WAIT_S, doubling, at most MAX_WAIT_S (a
# restarted server is found within MAX_WAIT_S of answering again).
FIRST_WAIT_S = 0.5
MAX_WAIT_S = 5.0
# What a lost or refused server connection raises (timeouts and refused/reset sockets are
# OSErrors; closes, bad handshakes and 5xx during start-up are WebSocketExceptions).
TRANSPORT_ERRORS = (websockets.exceptions.WebSocketException, OSError, EOFError)
PATH = "/task_runs/subscriptions/scheduled"


class AuthRefused(RuntimeError):
    """The server refused the agent's credentials: configuration, not an outage."""


async def _already_final(task_run: TaskRun) -> bool:
    """Whether the server records ``task_run`` as ended (a stale delivery); False if unsure."""
    try:
        async with get_client() as client:
            state = (await client.read_task_run(task_run.id)).state
    except Exception:  # the API not answering is no reason to drop a window: run it
        return False
    return state is not None and state.is_final()


class SlotFirstTaskWorker(TaskWorker):
    """``TaskWorker`` whose subscription takes a slot, then the next run, and reconnects after
    the server went away (see module)."""

    def __init__(self, *tasks: Any, limit: int = 1,
                 on_reconnect: Callable[[float, float], None] | None = None) -> None:
        super().__init__(*tasks, limit=limit)
        self.on_reconnect = on_reconnect

    async def _subscribe(self, url: str) -> Any:
        """An open, authenticated socket subscribed to this worker's task keys."""
        ws = await websocket_connect(url, subprotocols=[websockets.Subprotocol("prefect")]).__aenter__()
        try:
            api = get_current_settings().api
            secret = api.auth_string or api.key
            await ws.send(orjson.dumps({"type": "auth", "token": secret.get_secret_value()
                                        if secret else None}).decode())
            reply = orjson.loads(await ws.recv())
            if reply.get("type") != "auth_success":
                raise AuthRefused(f"the Prefect server refused the agent: {reply.get('reason', reply)}")
            await ws.send(orjson.dumps({"type": "subscribe", "keys": list(self.task_keys),
                                        "client_id": self.client_id}).decode())
        except BaseException:
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        return ws

    async def _subscribe_to_task_scheduling(self) -> None:
        base_url = get_current_settings().api.url
        if base_url is None:
            raise ValueError("PREFECT_API_URL must be set for a GPU agent (a Prefect server)")
        url = base_url.replace("http", "ws", 1) + PATH
        ws: Any = None
        lost_at: float | None = None
        wait = FIRST_WAIT_S
        while True:
            placeholder = object()
            if self._limiter:
                await self._limiter.acquire_on_behalf_of(placeholder)
            try:
                if ws is None:
                    ws = await self._subscribe(url)
                    if lost_at is not None:
                        self._reconnected(lost_at)
                    lost_at, wait = None, FIRST_WAIT_S
                message = await ws.recv()
                # the acknowledgement takes the run off the server's queue: only with a slot
                await ws.send(orjson.dumps({"type": "ack"}).decode())
            except TRANSPORT_ERRORS as exc:
                if lost_at is None:
                    lost_at = time.time()
                    logger.warning("stepfoley-agent-disconnected: %s: %s; reconnecting",
                                   type(exc).__name__, exc)
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()
                ws = None
                await asyncio.sleep(wait)
                wait = min(2 * wait, MAX_WAIT_S)
                continue
            finally:
                if self._limiter:
                    self._limiter.release_on_behalf_of(placeholder)
            task_run = TaskRun.model_validate_json(message)
            if await _already_final(task_run):
                logger.warning("stepfoley-agent-skipped %s (%s): its state is already final",
                               task_run.id, task_run.name)
                continue
            # the slot just freed is this run's: nothing else acquires between the two calls
            if await self._acquire_token(task_run.id):
                assert self._runs_task_group is not None
                self._runs_task_group.start_soon(self._safe_submit_scheduled_task_run, task_run)

    def _reconnected(self, lost_at: float) -> None:
        back_at = time.time()
        logger.warning("stepfoley-agent-reconnected after %.1f s", back_at - lost_at)
        if self.on_reconnect is not None:
            try:
                self.on_reconnect(lost_at, back_at)
            except OSError as exc:  # the record is advice for callers; serving goes on
                logger.warning("could not record the reconnection: %s", exc)


def serve_slot_first(*tasks: Any, limit: int = 1,
                     on_reconnect: Callable[[float, float], None] | None = None) -> None:
    """Serve ``tasks`` until stopped (SIGTERM/SIGINT), ``limit`` runs at a time;
    ``on_reconnect(lost_at, back_at)`` after each outage of the server connection."""

    async def main() -> None:
        worker = SlotFirstTaskWorker(*tasks, limit=limit, on_reconnect=on_reconnect)
        await worker.start()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
