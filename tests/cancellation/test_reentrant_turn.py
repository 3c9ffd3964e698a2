"""The turn is re-entrant for its holder only: the lines of one AUTH or STARTTLS exchange go
through ``execute_command`` one by one, yet another task's command never lands between them.
"""

from __future__ import annotations

import asyncio

from tests.cancellation.helpers import BOUND, client_for
from tests.cancellation.server import CancelServer

AUTH = ("PIPELINING", "8BITMIME", "SIZE 100000", "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2")


async def test_a_command_from_another_task_waits_for_the_whole_auth_exchange() -> None:
    async with CancelServer(extensions=AUTH) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        # The 334 to the AUTH line: had each line its own turn, the NOOP queued meanwhile
        # would go next and be read as the password.
        hold = server.hold("AUTH")
        auth = asyncio.create_task(client.auth_login("user", "secret"))
        await asyncio.wait_for(hold.reached.wait(), BOUND)
        noop = asyncio.create_task(client.noop())
        await asyncio.sleep(0)  # one step: the NOOP task runs until it waits for the turn
        hold.release()
        assert (await asyncio.wait_for(auth, BOUND)).code == 235
        assert (await asyncio.wait_for(noop, BOUND)).code == 250
        await client.quit()
        assert server.conn.lines[1:5] == [
            ("cmd", "AUTH LOGIN dXNlcg=="),
            ("sasl", "c2VjcmV0"),
            ("cmd", "NOOP"),
            ("cmd", "QUIT"),
        ]
        assert server.violations == []
