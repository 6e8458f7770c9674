"""Slack's Socket Mode, faked: the WebSocket that ``apps.connections.open`` hands out.

``FakeSlack.socket_mode`` (a SocketModeHub) serves ``ws://127.0.0.1:<port>/link/?ticket=…`` on
the fake's own port and speaks the protocol slack_sdk's ``SocketModeClient`` expects:

- on connect, ``{"type": "hello", "num_connections", "debug_info", "connection_info"}``;
- envelopes ``{"envelope_id", "payload", "type", "accepts_response_payload"}`` of type
  ``slash_commands``, ``interactive`` or ``events_api`` (events also carry ``retry_attempt``
  and ``retry_reason``), and the client's acks ``{"envelope_id", "payload"?}``;
- ``{"type": "disconnect", "reason", "debug_info"}``, after which it closes the socket as
  Slack does (after a short grace for ``warning`` and ``refresh_requested``);
- a pong for every ping.

Each ticket is good for one connection. Every connection is recorded (SocketConnection: when
it opened and closed, who closed it, what went each way) and every envelope (Delivery: which
socket it went to, its ack and when), so tests can assert reconnects, acks, and envelopes
nobody acknowledged. Shapes follow Slack's Socket Mode documentation and the envelopes
captured in slack_sdk's own tests. The Web API side (the app token, refusing or being out of
reach) is in ``workspace.py``, and ``apps.connections.open`` itself in ``users.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .workspace import Workspace

JsonDict = dict[str, Any]

# Slack shows an error (and retries events) when the ack takes this long or more.
SLACK_ACK_DEADLINE = 3.0
# Slack allows an app up to 10 open Socket Mode connections.
MAX_CONNECTIONS = 10
ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
# Interactive payloads whose ack may carry an answer Slack acts on (response_action,
# options); Slack's captured block_actions and shortcut envelopes say false.
ANSWERABLE_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})
# Disconnects Slack follows by closing the socket a little later rather than at once.
GRADUAL_DISCONNECTS = frozenset({"warning", "refresh_requested"})
DISCONNECT_GRACE = 0.5
# How long closing a socket waits for the client's close frame.
CLOSE_TIMEOUT = 1.0

Policy = Literal["newest", "round_robin"]


@dataclass(eq=False)
class SocketConnection:
    """One WebSocket a client opened with a ticket from ``apps.connections.open``.

    ``opened_at``/``closed_at`` are ``time.monotonic()``. ``closed_by`` is ``"slack"`` (the
    fake closed it), ``"client"`` or ``"dropped"`` (cut without a close frame). ``sent`` and
    ``received`` hold every message each way, JSON-decoded where possible.
    """

    number: int
    ticket: str
    opened_at: float
    hello: JsonDict = field(default_factory=dict)
    closed_at: float | None = None
    closed_by: str | None = None
    close_code: int | None = None
    disconnect_reason: str | None = None
    pings: int = 0
    sent: list[Any] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    _ws: web.WebSocketResponse | None = field(default=None, repr=False)
    _transport: asyncio.BaseTransport | None = field(default=None, repr=False)

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def accepting(self) -> bool:
        """Open and not told to disconnect: Slack delivers envelopes here."""
        return self.open and self.disconnect_reason is None


@dataclass(eq=False)
class Delivery:
    """One envelope the fake sent, and the ack it got (``*_at`` are ``time.monotonic()``).

    ``connection`` is None when no socket could take it (undeliverable): it is never acked.
    A second ack for the same envelope lands in ``extra_acks``.
    """

    envelope: JsonDict
    connection: SocketConnection | None
    sent_at: float
    ack: JsonDict | None = None
    acked_at: float | None = None
    ack_connection: SocketConnection | None = None
    extra_acks: list[JsonDict] = field(default_factory=list)
    _acked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def envelope_id(self) -> str:
        return str(self.envelope["envelope_id"])

    @property
    def type(self) -> str:
        return str(self.envelope["type"])

    @property
    def payload(self) -> JsonDict:
        payload: JsonDict = self.envelope["payload"]
        return payload

    @property
    def undeliverable(self) -> bool:
        return self.connection is None

    @property
    def acked(self) -> bool:
        return self.ack is not None

    @property
    def ack_payload(self) -> Any:
        """The ack's ``payload``, or None for an ack without one (or no ack)."""
        return None if self.ack is None else self.ack.get("payload")

    @property
    def elapsed(self) -> float | None:
        """Seconds from sending to the ack; None without an ack."""
        return None if self.acked_at is None else self.acked_at - self.sent_at

    @property
    def acked_in_time(self) -> bool:
        return self.elapsed is not None and self.elapsed < SLACK_ACK_DEADLINE

    async def wait(self, timeout: float = SLACK_ACK_DEADLINE) -> bool:
        """Wait up to ``timeout`` s for the ack; whether it came."""
        if self.acked or self.undeliverable:
            return self.acked
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acked.wait(), timeout)
        return self.acked

    def _record_ack(self, message: JsonDict, connection: SocketConnection) -> None:
        if self.ack is not None:
            self.extra_acks.append(message)
            return
        self.ack, self.acked_at, self.ack_connection = message, time.monotonic(), connection
        self._acked.set()


class SocketModeHub:
    """The Socket Mode side of a FakeSlack: its WebSockets, envelopes and acks.

    Envelopes go to one accepting connection: the newest (``policy = "newest"``, the
    default) or each in turn (``"round_robin"``); ``connection=`` picks one. Set
    ``answer_pings = False`` to leave the client's pings unanswered (a half-open socket).
    """

    def __init__(self, fake: Workspace) -> None:
        self.fake = fake
        self.connections: list[SocketConnection] = []
        self.deliveries: list[Delivery] = []
        # Acks naming no envelope the fake sent, and tickets refused at the handshake.
        self.stray_acks: list[JsonDict] = []
        self.rejected_tickets: list[str] = []
        self.max_connections = MAX_CONNECTIONS
        self.disconnect_grace = DISCONNECT_GRACE
        self.answer_pings = True
        self.policy: Policy = "newest"
        self.unreachable = False
        self._tickets: set[str] = set()
        self._by_id: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn = itertools.count()
        self._rng = random.Random(1)
        self._stopping = False

    # -- inspection -----------------------------------------------------------------------------

    @property
    def open_connections(self) -> list[SocketConnection]:
        return [conn for conn in self.connections if conn.open]

    @property
    def accepting_connections(self) -> list[SocketConnection]:
        return [conn for conn in self.connections if conn.accepting]

    def delivery(self, envelope_id: str) -> Delivery:
        return self._by_id[envelope_id]

    def unacked(self) -> list[Delivery]:
        """Envelopes never acknowledged (undeliverable ones included), oldest first."""
        return [d for d in self.deliveries if not d.acked]

    async def wait_connected(
        self, count: int = 1, timeout: float = 5.0, *, after: SocketConnection | None = None
    ) -> SocketConnection:
        """Wait until ``count`` connections (opened after ``after``, if given) accept
        envelopes; the newest of them."""

        def ready() -> list[SocketConnection]:
            newer = after.number if after is not None else 0
            return [c for c in self.accepting_connections if c.number > newer]

        await self.fake.wait_for(
            lambda: len(ready()) >= count, timeout, f"{count} new Socket Mode connection(s)"
        )
        return ready()[-1]

    # -- the Web API side -----------------------------------------------------------------------

    def new_url(self) -> str:
        """A fresh WebSocket URL, as ``apps.connections.open`` answers it."""
        ticket = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._tickets.add(ticket)
        ws_base = self.fake.base_url.replace("http://", "ws://", 1)
        return f"{ws_base}/link/?ticket={ticket}&app_id={self.fake.app_id}"

    # -- envelopes ------------------------------------------------------------------------------

    def envelope(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> JsonDict:
        """An envelope as Slack builds it; a new ``envelope_id`` each time."""
        if type not in ENVELOPE_TYPES:
            raise ValueError(
                f"unknown envelope type {type!r}; Slack sends {sorted(ENVELOPE_TYPES)}"
            )
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in ANSWERABLE_INTERACTIONS
            )
        envelope: JsonDict = {
            "envelope_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        return envelope

    def _choose(self, connection: SocketConnection | None) -> SocketConnection | None:
        if connection is not None:
            return connection if connection.open else None
        accepting = self.accepting_connections
        if not accepting:
            return None
        if self.policy == "round_robin":
            return accepting[next(self._turn) % len(accepting)]
        return accepting[-1]

    async def send(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: SocketConnection | None = None,
    ) -> Delivery:
        """Send an envelope without waiting for its ack (see ``Delivery.wait``)."""
        envelope = self.envelope(
            type,
            payload,
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        target = self._choose(connection)
        delivery = Delivery(envelope, target, time.monotonic())
        self.deliveries.append(delivery)
        self._by_id[delivery.envelope_id] = delivery
        if target is not None and not await self._send(target, envelope):
            delivery.connection = None
        return delivery

    async def deliver(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        connection: SocketConnection | None = None,
        timeout: float = SLACK_ACK_DEADLINE,
    ) -> Delivery:
        """Send an envelope and wait up to ``timeout`` s for its ack."""
        delivery = await self.send(
            type,
            payload,
            accepts_response_payload=accepts_response_payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            connection=connection,
        )
        await delivery.wait(timeout)
        return delivery

    async def send_raw(
        self, message: str | JsonDict, connection: SocketConnection | None = None
    ) -> SocketConnection | None:
        """Send any frame (a string as is, a dict as JSON); the socket it went to."""
        target = self._choose(connection)
        if target is None or target._ws is None:
            return None
        text = message if isinstance(message, str) else json.dumps(message)
        try:
            await target._ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return None
        target.sent.append(message)
        return target

    async def _send(self, conn: SocketConnection, message: JsonDict) -> bool:
        if conn._ws is None or not conn.open:
            return False
        try:
            await conn._ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            return False
        conn.sent.append(message)
        return True

    # -- disconnects ----------------------------------------------------------------------------

    def _debug_info(self, conn: SocketConnection) -> JsonDict:
        return {"host": f"applink-fake-{conn.number}"}

    async def disconnect(
        self,
        reason: str = "refresh_requested",
        *,
        connection: SocketConnection | None = None,
        grace: float | None = None,
    ) -> list[SocketConnection]:
        """Tell ``connection`` (default: every open one) to go, then close it.

        Slack's reasons: ``warning`` and ``refresh_requested`` (closed after ``grace``,
        default ``disconnect_grace``), ``link_disabled`` (Socket Mode turned off; closed at
        once), ``too_many_websockets``. Returns the connections told.
        """
        targets = [connection] if connection is not None else self.open_connections
        wait = (
            grace
            if grace is not None
            else (self.disconnect_grace if reason in GRADUAL_DISCONNECTS else 0.0)
        )
        told = []
        for conn in targets:
            if not conn.open:
                continue
            conn.disconnect_reason = reason
            message = {"type": "disconnect", "reason": reason, "debug_info": self._debug_info(conn)}
            await self._send(conn, message)
            told.append(conn)
            self._spawn(self._close_later(conn, wait))
        return told

    async def _close_later(self, conn: SocketConnection, wait: float) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        await self.close(conn)

    async def close(self, connection: SocketConnection | None = None, *, code: int = 1000) -> None:
        """Close ``connection`` (default: every open one) with a close frame, no message."""
        targets = [connection] if connection is not None else self.open_connections
        await asyncio.gather(*(self._close(conn, code) for conn in targets if conn.open))

    async def _close(self, conn: SocketConnection, code: int) -> None:
        conn.closed_by = conn.closed_by or "slack"
        if conn._ws is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn._ws.close(code=code)
        self._mark_closed(conn, code)

    def drop(self, connection: SocketConnection | None = None) -> None:
        """Cut ``connection`` (default: every open one) without a close frame."""
        targets = [connection] if connection is not None else self.open_connections
        for conn in targets:
            if conn.open:
                conn.closed_by = conn.closed_by or "dropped"
                if isinstance(conn._transport, asyncio.Transport):
                    conn._transport.abort()
                self._mark_closed(conn, None)

    def _mark_closed(self, conn: SocketConnection, code: int | None) -> None:
        if conn.closed_at is None:
            conn.closed_at = time.monotonic()
            conn.closed_by = conn.closed_by or "client"
            conn.close_code = code

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Close every socket and refuse new ones (FakeSlack.stop calls this)."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close(code=1001)

    # -- the WebSocket endpoint -----------------------------------------------------------------

    async def handle_link(self, request: web.Request) -> web.StreamResponse:
        if self.unreachable or self._stopping:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never reaches the client
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            self.rejected_tickets.append(ticket)
            return web.Response(status=401, text="invalid_ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        conn = SocketConnection(
            number=len(self.connections) + 1,
            ticket=ticket,
            opened_at=time.monotonic(),
            _ws=ws,
            _transport=request.transport,
        )
        self.connections.append(conn)
        try:
            if len(self.open_connections) > self.max_connections:
                await self.disconnect("too_many_websockets", connection=conn, grace=0.0)
            else:
                conn.hello = self._hello(conn)
                await self._send(conn, conn.hello)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(conn, message.data)
                elif message.type == WSMsgType.PING:
                    conn.pings += 1
                    if self.answer_pings:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await ws.pong(message.data)
                elif message.type == WSMsgType.BINARY:
                    conn.received.append(message.data)
        finally:
            self._mark_closed(conn, ws.close_code)
        return ws

    def _hello(self, conn: SocketConnection) -> JsonDict:
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return {
            "type": "hello",
            "num_connections": len(self.open_connections),
            "debug_info": {
                **self._debug_info(conn),
                "started": started,
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.fake.app_id},
        }

    def _receive(self, conn: SocketConnection, text: str) -> None:
        try:
            message: Any = json.loads(text)
        except ValueError:
            message = text
        conn.received.append(message)
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        delivery = self._by_id.get(str(message["envelope_id"]))
        if delivery is None:
            self.stray_acks.append(message)
        else:
            delivery._record_ack(message, conn)
