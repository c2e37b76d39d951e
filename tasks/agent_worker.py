"""Prefect's task worker, taking a window off the server's queue only when it has room for it.

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

The rest (executing a run in the engine, the thread pool, the limit's bookkeeping, stopping)
is ``TaskWorker``'s own; only the subscription loop differs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.schemas.objects import TaskRun
from prefect.client.subscriptions import Subscription
from prefect.settings import get_current_settings
from prefect.task_worker import TaskWorker


class SlotFirstTaskWorker(TaskWorker):
    """``TaskWorker`` whose subscription loop takes a slot, then the next run (see module)."""

    async def _subscribe_to_task_scheduling(self) -> None:
        base_url = get_current_settings().api.url
        if base_url is None:
            raise ValueError("PREFECT_API_URL must be set for a GPU agent (a Prefect server)")
        runs = Subscription(model=TaskRun, path="/task_runs/subscriptions/scheduled",
                            keys=self.task_keys, client_id=self.client_id, base_url=base_url)
        while True:
            placeholder = object()
            if self._limiter:
                await self._limiter.acquire_on_behalf_of(placeholder)
            try:
                task_run = await runs.__anext__()  # reads and acknowledges one run
            finally:
                if self._limiter:
                    self._limiter.release_on_behalf_of(placeholder)
            # the slot just freed is this run's: nothing else acquires between the two calls
            if await self._acquire_token(task_run.id):
                assert self._runs_task_group is not None
                self._runs_task_group.start_soon(self._safe_submit_scheduled_task_run, task_run)


def serve_slot_first(*tasks: Any, limit: int = 1) -> None:
    """Serve ``tasks`` until stopped (SIGTERM/SIGINT), ``limit`` runs at a time."""

    async def main() -> None:
        worker = SlotFirstTaskWorker(*tasks, limit=limit)
        await worker.start()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
