"""Suite-wide fixtures: the core ``impl`` switch and the event-loop switch.

``async def`` tests run on a fresh event loop per test, asyncio's or uvloop's as chosen
with ``--event-loop`` (or ``FASTSMTP_TEST_LOOP``); no pytest-asyncio needed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

import pytest

REQUIRE_EXTENSIONS = os.environ.get("FASTSMTP_REQUIRE_EXTENSIONS") == "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop",
        choices=("asyncio", "uvloop"),
        default=os.environ.get("FASTSMTP_TEST_LOOP", "asyncio"),
        help="event loop the async tests run on",
    )


def _loop_factory(config: pytest.Config) -> Callable[[], asyncio.AbstractEventLoop]:
    if config.getoption("--event-loop") == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_coroutine(
    factory: Callable[[], asyncio.AbstractEventLoop], coro: Coroutine[Any, Any, Any]
) -> Any:
    """Run ``coro`` to completion on a new loop from ``factory``, then close the loop."""
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    run_coroutine(_loop_factory(pyfuncitem.config), pyfuncitem.obj(**kwargs))
    return True


# mutmut (tools/mutation) sets MUTANT_UNDER_TEST in the processes that run the tests, and
# runs the mutants in processes forked from the one that ran the unmutated suite. A
# function behind a cache is then reached only by the first test that fills the cache
# (so only that test is recorded as covering it), and a mutant of it only where the forked
# cache misses. Under mutmut each test starts with the core's caches empty.
_UNDER_MUTMUT = "MUTANT_UNDER_TEST" in os.environ


@pytest.fixture(autouse=_UNDER_MUTMUT)
def _empty_core_caches() -> None:
    from fastsmtp import _commands, _flatten, _folding, _transaction, email

    _commands._path.cache_clear()
    email._policy.cache_clear()
    _flatten._HANDLERS.clear()
    _folding._HEADER_CLASSES.clear()
    _folding._LABELS.clear()
    _transaction._GROUPS.clear()
    email._GOOD_NAMES.clear()


@pytest.fixture
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the event loop this run uses (for tests that run loops themselves)."""
    return _loop_factory(request.config)


@pytest.fixture(params=["c", "py"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The core implementation under test: the compiled ``_parser`` or ``_parser_py``."""
    if request.param == "py":
        return importlib.import_module("fastsmtp._parser_py")
    try:
        return importlib.import_module("fastsmtp._parser")
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            pytest.fail(f"compiled fastsmtp._parser did not load: {exc}")
        pytest.skip(f"compiled fastsmtp._parser not built: {exc}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    import fastsmtp._speedups as speedups

    return [
        f"fastsmtp core: {speedups.IMPLEMENTATION} (FASTSMTP_NO_EXTENSIONS="
        f"{os.environ.get('FASTSMTP_NO_EXTENSIONS', '')!r}); "
        f"event loop: {config.getoption('--event-loop')}; python {sys.version.split()[0]}"
    ]
