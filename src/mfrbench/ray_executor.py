"""The Ray executor: a stage's chunks as tasks of actors that load their models once.

One :class:`ChunkActor` per CPU of the cluster (or ``actors``); its ``__init__`` runs the
stage's initializer (the same one the local pool runs), its ``run`` applies the stage's function
to one chunk. The driver keeps at most :data:`SLOTS_PER_ACTOR` chunks queued per actor and at
most :data:`WINDOW_PER_ACTOR` results held for ordering, so memory stays flat over any number of
chunks, and hands results back in input order. A worker process that dies (killed, out of
memory, its node lost) is restarted by Ray (the initializer runs again) and its chunks are
retried up to :data:`MAX_TASK_RETRIES` times, so a lost worker costs only its chunks. An
exception raised by the function itself is not retried: it is raised on the driver as the
original exception. Ray is imported lazily, so it stays an optional extra.

Workers read inputs and write outputs (image files) at the paths they are given, so every node
must see the same files at the same absolute paths (a shared filesystem); see docs/scaling.md.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mfrbench.errors import UserError

RAY_MISSING = "the ray executor needs Ray: pip install 'mfrbench[ray]'"
#: Retries of a chunk whose worker process died (a function's own exception is never retried).
MAX_TASK_RETRIES = 3
#: Chunks queued on one actor at a time (the next one is ready when the current one ends).
SLOTS_PER_ACTOR = 2
#: Submitted chunks (running or finished, not yet handed back) per actor.
WINDOW_PER_ACTOR = 4
#: The title Ray gives an actor's process (``ray::<class>``), e.g. to find it in ``ps``.
ACTOR_TITLE = "ray::ChunkActor"


def import_ray() -> Any:
    """The ``ray`` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(RAY_MISSING) from exc
    return ray


def connect(address: str | None) -> Any:
    """Attach to the Ray cluster at ``address`` (None: the local one, started if none runs);
    an existing connection of this process is reused."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = address or "the local machine"
            raise UserError(f"--ray-address: cannot reach a Ray cluster at {where}: {exc}") from exc
    return ray


def actor_count(address: str | None, actors: int | None) -> int:
    """Actors a map starts: ``actors``, else the cluster's CPUs (at least 1)."""
    ray = connect(address)
    return actors or max(1, int(ray.cluster_resources().get("CPU", 1)))


class ChunkActor:
    """One worker process: runs the initializer once, then the function per chunk."""

    def __init__(self, payload: tuple[Callable[[Any], Any], Callable[..., Any], tuple]) -> None:
        fn, initializer, initargs = payload
        initializer(*initargs)
        self._fn = fn

    def run(self, item: Any) -> Any:
        return self._fn(item)

    def pid(self) -> int:
        return os.getpid()


def _result(ray: Any, ref: Any, index: int) -> Any:
    """A chunk's result; its function's exception raised as itself, a lost worker as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from exc
        raise
    except ray.exceptions.RayActorError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"chunk {index}: its Ray worker failed {MAX_TASK_RETRIES + 1} times or could not "
            f"start ({first})"
        ) from exc


def ray_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    initializer: Callable[..., Any],
    initargs: tuple = (),
    *,
    address: str | None = None,
    actors: int | None = None,
) -> Iterator[Any]:
    """``fn`` over ``items`` on Ray actors (see the module docstring), results in input order.

    Stopping early (or an error) kills the actors, which frees their CPUs.
    """
    ray = connect(address)
    n = actor_count(address, actors)
    cpus = float(ray.cluster_resources().get("CPU", 1))
    remote_cls = ray.remote(
        num_cpus=min(1.0, cpus / n),  # more actors than CPUs share them instead of waiting
        max_restarts=-1,
        max_task_retries=MAX_TASK_RETRIES,
    )(ChunkActor)
    pool = [remote_cls.remote((fn, initializer, initargs)) for _ in range(n)]
    free: deque[Any] = deque(a for _ in range(SLOTS_PER_ACTOR) for a in pool)
    running: dict[Any, Any] = {}  # unfinished ref -> its actor
    order: deque[tuple[int, Any]] = deque()  # (index, ref) submitted, not yet handed back
    source = iter(items)
    exhausted, next_index = False, 0
    try:
        while True:
            while free and not exhausted and len(order) < WINDOW_PER_ACTOR * n:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                actor = free.popleft()
                ref = actor.run.remote(item)
                running[ref] = actor
                order.append((next_index, ref))
                next_index += 1
            if not order:
                return
            index, head = order[0]
            if head in running:
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    free.append(running.pop(ref))
                continue
            order.popleft()
            yield _result(ray, head, index)
    finally:
        for actor in pool:
            ray.kill(actor)
