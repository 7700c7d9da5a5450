from __future__ import annotations

import asyncio

import numpy as np
import pytest

from models.serve.batcher import MicroBatcher


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.fail:
            raise RuntimeError("model broke")
        self.batches.append(len(x))
        return {"double": x * 2, "first": x[:, 0].copy()}


def rows(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32).reshape(n, 1).repeat(3, axis=1)


@pytest.mark.parametrize("offload", [False, True])
def test_concurrent_requests_share_batches_and_get_their_own_rows(offload: bool) -> None:
    run = Recorder()

    async def scenario() -> list[dict[str, np.ndarray]]:
        b = MicroBatcher(run, max_batch_size=8, max_wait_ms=5, offload=offload)
        b.start()
        results = await asyncio.gather(*[b.submit(rows(10 * i, 2)) for i in range(10)])
        await b.stop()
        return results

    results = asyncio.run(scenario())
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["double"], rows(10 * i, 2) * 2)
        np.testing.assert_array_equal(out["first"], rows(10 * i, 2)[:, 0])
    assert sum(run.batches) == 20
    assert max(run.batches) == 8  # 4 requests of 2 rows filled a batch
    assert len(run.batches) < 10


def test_a_large_request_runs_alone_and_is_not_split() -> None:
    run = Recorder()

    async def scenario() -> dict[str, np.ndarray]:
        b = MicroBatcher(run, max_batch_size=4, max_wait_ms=0)
        b.start()
        out = await b.submit(rows(0, 9))
        await b.stop()
        return out

    assert asyncio.run(scenario())["double"].shape == (9, 3)
    assert run.batches == [9]


def test_a_lone_request_does_not_wait_for_company() -> None:
    run = Recorder()

    async def scenario() -> None:
        # waiting for company would take the whole minute: the answer comes long before
        b = MicroBatcher(run, max_batch_size=32, max_wait_ms=60_000, pending=lambda: 0)
        b.start()
        await asyncio.wait_for(b.submit(rows(0, 1)), 30)
        await b.stop()

    asyncio.run(scenario())
    assert run.batches == [1]


def test_model_errors_reach_every_caller_and_the_worker_survives() -> None:
    run = Recorder(fail=True)

    async def scenario() -> list[object]:
        b = MicroBatcher(run, max_batch_size=8, max_wait_ms=1)
        b.start()
        out: list[object] = list(await asyncio.gather(
            b.submit(rows(0, 1)), b.submit(rows(1, 1)), return_exceptions=True))
        run.fail = False
        out.append(await b.submit(rows(2, 1)))
        await b.stop()
        return out

    first, second, third = asyncio.run(scenario())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert isinstance(third, dict)


def test_stop_runs_what_is_queued_then_refuses() -> None:
    run = Recorder()

    async def scenario() -> None:
        b = MicroBatcher(run, max_batch_size=2, max_wait_ms=0)
        b.start()
        tasks = [asyncio.ensure_future(b.submit(rows(i, 1))) for i in range(5)]
        await asyncio.sleep(0)
        await b.stop()
        assert all(t.done() and not t.exception() for t in tasks)
        with pytest.raises(RuntimeError, match="not running"):
            await b.submit(rows(0, 1))

    asyncio.run(scenario())
    assert sum(run.batches) == 5


def test_a_failing_delivery_callback_does_not_stop_the_batcher() -> None:
    run = Recorder()

    async def scenario() -> dict[str, np.ndarray]:
        b = MicroBatcher(run, max_batch_size=8, max_wait_ms=0)
        b.start()

        def broken(result: object) -> None:
            raise ValueError("caller bug")

        b.enqueue(rows(0, 1), broken)
        out = await b.submit(rows(5, 1))  # the batcher still answers the next request
        await b.stop()
        return out

    np.testing.assert_array_equal(asyncio.run(scenario())["double"], rows(5, 1) * 2)
