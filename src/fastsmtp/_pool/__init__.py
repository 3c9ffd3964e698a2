"""The connection pool behind :class:`fastsmtp.pool.SMTPPool`, split by concern.

Each module imports only those listed below it; none imports :mod:`fastsmtp.pool`.

- :mod:`._runner` - ``send_many``: lazy input, concurrency, progress, input order.
- :mod:`._delivery` - one message: attempts on checked-out connections, retries.
- :mod:`._policy` - what an outcome means (RFC 5321 section 4.2.1 reply classes), what
  a failure leaves a connection fit for, backoff, and the ``SendResult`` tally.
- :mod:`._job` - what to send, and how to submit it on a client.
- :mod:`._store` - the connections: open, health check, retire; ``async with`` checkout.
- :mod:`._relays` - which relay a new connection goes to; per-relay backoff.
- :mod:`._slots` - fair FIFO slots; :mod:`._rate` - sliding-window rate limits.
"""
