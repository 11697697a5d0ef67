"""The tests' waiting helper returns what the check found, or fails saying what it awaited."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.waiting import eventually, eventually_async


def test_returns_the_first_truthy_value_the_check_gives() -> None:
    """A check that holds on its third call returns that call's value."""
    calls = itertools.count(1)

    def third() -> list[int]:
        n = next(calls)
        return [n] if n >= 3 else []

    assert eventually(third, "three calls") == [3]


def test_a_check_that_never_holds_fails_naming_what_how_long_and_what_it_saw() -> None:
    """Past the deadline it raises an AssertionError with the awaited thing, the time and the
    last value seen."""
    with pytest.raises(AssertionError, match=r"waited 0\.05 s for the moon; it gave \[\]"):
        eventually(list, "the moon", timeout_s=0.05)


def test_ignored_errors_mean_not_yet_and_other_errors_stop_at_once() -> None:
    """Errors listed in ``ignoring`` are retried (the last one is reported); others propagate."""
    calls = itertools.count(1)

    def opens_on_the_third_try() -> int:
        n = next(calls)
        if n < 3:
            raise ConnectionError("port closed")
        return n

    def never_opens() -> int:
        raise ConnectionError("port closed")

    def exited() -> int:
        raise RuntimeError("the server exited")

    assert eventually(opens_on_the_third_try, "a port", ignoring=(ConnectionError,)) == 3
    with pytest.raises(AssertionError, match=r"raised ConnectionError\('port closed'\)"):
        eventually(never_opens, "a port", timeout_s=0.05, ignoring=(ConnectionError,))
    with pytest.raises(RuntimeError, match="exited"):
        eventually(exited, "a server", ignoring=(ConnectionError,))


def test_a_deadline_must_be_positive() -> None:
    """A zero or negative timeout is a mistake in the test, named as such."""
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        eventually(lambda: True, "nothing", timeout_s=0)


async def test_the_async_form_lets_the_loop_run_between_checks() -> None:
    """A coroutine check is awaited, and other tasks on the loop progress while it waits."""
    done: list[int] = []

    async def worker() -> None:
        await asyncio.sleep(0)  # not done on the first check: the wait must yield to the loop
        done.append(1)

    async def finished() -> bool:
        return bool(done)

    task = asyncio.create_task(worker())
    assert await eventually_async(finished, "the worker to run") is True
    await task

    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match="for never; it gave False"):
        await eventually_async(never, "never", timeout_s=0.05)
