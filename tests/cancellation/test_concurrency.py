"""Many tasks share one ``fastsmtp.SMTP`` and cancel each other's work at random.

20 tasks each run a fixed, seeded sequence of operations (noop, vrfy, rset, help, ehlo,
sendmail, send_message) on one client; about a third of the operations are cancelled after a
random short delay. The server's replies name the command they answer (``NOOP#k``; a final
reply names the message's Message-ID), so the test checks:

* every successful call got a reply naming its own command (replies never cross);
* every message the server accepted was sent by a task that got success, or that was
  cancelled, or whose error has ``outcome_unknown`` - never one whose caller was told it
  failed before the message was out; every success was accepted exactly once;
* the server saw no protocol violation (no command inside a body, no stray lines);
* nothing hangs: the whole run is bounded, and a client timeout counts as a failure (the
  server never stalls here).

When a cancellation forces the client to drop the connection, the other tasks get
SMTPServerDisconnected and the next task to notice reconnects.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

import fastsmtp
from tests.cancellation.helpers import assert_no_tasks_left, client_for, email_message, message
from tests.cancellation.server import CancelServer

TASKS = 20
ITERATIONS = 10
OPERATIONS = ("noop", "vrfy", "rset", "help", "ehlo", "sendmail", "sendmail", "send_message")
CANCEL_PROBABILITY = 0.35
MAX_PROBLEMS = 8


class Run:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.succeeded: set[str] = set()
        self.uncertain: set[str] = set()  # cancelled, or outcome_unknown
        self.failed: dict[str, str] = {}  # the client said: not sent
        self.cancelled = 0
        self.disconnects = 0
        self.reconnects = 0


@pytest.mark.parametrize("pipelining", [False, None], ids=["lockstep", "pipelined"])
@pytest.mark.parametrize("seed", [1, 2])
async def test_shared_client_random_cancellations(seed: int, pipelining: bool | None) -> None:
    rng = random.Random(seed)
    # Each operation: (kind, cancellation). A cancellation is None, or (point, delay): the
    # caller is cancelled ``delay`` seconds after the op starts ("timer"), or after the server
    # got the op's own command ("command": its MAIL, or its VRFY) or its body ("body").
    plans = []
    for _ in range(TASKS):
        plan = []
        for _ in range(ITERATIONS):
            kind = rng.choice(OPERATIONS)
            cancel = None
            if rng.random() < CANCEL_PROBABILITY:
                points = ["timer"]
                if kind == "vrfy":
                    points.append("command")
                elif kind in ("sendmail", "send_message"):
                    points += ["command", "body"]
                cancel = (rng.choice(points), rng.choice([0.0, rng.uniform(0.0, 0.004)]))
            plan.append((kind, cancel))
        plans.append(plan)
    run = Run()
    latency = random.Random(seed + 1000)
    async with CancelServer(
        extensions=("PIPELINING", "8BITMIME", "SIZE 100000"),
        latency=lambda: latency.uniform(0.0, 0.002),
    ) as server:
        client = client_for(server, timeout=3, pipelining=pipelining)
        reconnect = asyncio.Lock()

        async def ensure_connected() -> None:
            async with reconnect:
                if not client.is_connected:
                    run.reconnects += 1
                    await client.connect()

        async def operation(kind: str, number: str) -> None:
            if kind == "noop":
                reply = await client.noop()
                _expect(run, kind, reply.message, "NOOP#")
            elif kind == "vrfy":
                address = f"who{number}@cancel.test"
                reply = await client.vrfy(address)
                _expect(run, kind, reply.message, "VRFY#", address)
            elif kind == "rset":
                reply = await client.rset()
                _expect(run, kind, reply.message, "RSET#")
            elif kind == "help":
                text = await client.help()
                _expect(run, kind, text, "HELP#")
            elif kind == "ehlo":
                reply = await client.ehlo()
                _expect(run, kind, reply.message, "EHLO#")

        async def send(kind: str, message_id: str, sender: str) -> None:
            if kind == "sendmail":
                _, data = message(message_id)
                _, text = await client.sendmail(sender, ["b@cancel.test"], data)
            else:
                _, msg = email_message(message_id)
                _, text = await client.send_message(msg, sender=sender)
            _expect(run, kind, text, f"id={message_id}")
            run.succeeded.add(message_id)

        async def worker(index: int) -> None:
            for step, (kind, cancel) in enumerate(plans[index]):
                if len(run.problems) > MAX_PROBLEMS:
                    return
                try:
                    await ensure_connected()
                except (fastsmtp.SMTPException, OSError) as exc:
                    run.problems.append(f"reconnect failed: {exc!r}")
                    return
                number = f"{index}-{step}"
                message_id = f"<t{number}-s{seed}@cancel.test>"
                sender = f"s{number}@cancel.test"
                is_send = kind in ("sendmail", "send_message")
                start = len(server.log)
                task = asyncio.ensure_future(
                    send(kind, message_id, sender) if is_send else operation(kind, number)
                )
                if cancel is not None:
                    point, delay = cancel
                    if point != "timer":
                        needle = {
                            "command": f"<{sender}>" if is_send else f"who{number}@",
                            "body": f"BODY {message_id}",
                        }[point]
                        marker = asyncio.ensure_future(server.wait_logged(needle, start))
                        await asyncio.wait({task, marker}, return_when=asyncio.FIRST_COMPLETED)
                        marker.cancel()
                    if delay:
                        await asyncio.wait({task}, timeout=delay)
                    task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise
                    run.cancelled += 1
                    if is_send:
                        run.uncertain.add(message_id)
                except fastsmtp.SMTPServerDisconnected as exc:
                    run.disconnects += 1
                    if is_send:
                        if exc.outcome_unknown:
                            run.uncertain.add(message_id)
                        else:
                            run.failed[message_id] = repr(exc)
                except fastsmtp.SMTPTimeoutError as exc:
                    if is_send and exc.outcome_unknown:
                        run.uncertain.add(message_id)
                    run.problems.append(f"{kind} {number}: timed out (a hang): {exc!r}")
                except Exception as exc:
                    run.problems.append(f"{kind} {number}: {exc!r}")

        try:
            workers = [asyncio.ensure_future(worker(i)) for i in range(TASKS)]
            done, pending = await asyncio.wait(workers, timeout=60)
            for task in pending:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            assert not pending, f"{len(pending)} workers still running after 60 s (a hang)"
            for task in done:
                task.result()
        finally:
            client.close()
    print(
        f"cancelled {run.cancelled}, disconnects {run.disconnects}, reconnects "
        f"{run.reconnects}, sent {len(run.succeeded)}, uncertain {len(run.uncertain)}, "
        f"failed {len(run.failed)}, connections {len(server.conns)}"
    )
    accepted = Counter(mid for _, mid in server.accepted)
    assert run.problems == [], "\n".join(run.problems)
    assert server.violations == [], "\n".join(server.violations)
    twice = [mid for mid, n in accepted.items() if n > 1]
    assert not twice, f"accepted more than once: {twice}"
    missing = run.succeeded - set(accepted)
    assert not missing, f"the client reported success, the server never accepted: {missing}"
    wrongly_failed = {mid: why for mid, why in run.failed.items() if mid in accepted}
    assert not wrongly_failed, (
        f"accepted although the client said it was not sent: {wrongly_failed}"
    )
    unexplained = set(accepted) - run.succeeded - run.uncertain
    assert not unexplained, f"accepted, but no caller knows about it: {unexplained}"
    assert run.succeeded, "nothing at all was sent"
    await assert_no_tasks_left()


def _expect(run: Run, kind: str, text: Any, *needles: str) -> None:
    for needle in needles:
        if needle not in str(text):
            run.problems.append(f"{kind} got a reply that is not its own: {text!r}")
            return
