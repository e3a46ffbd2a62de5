"""Where a stage's chunks run: ``local`` (the spawned process pool of :mod:`mfrbench.workers`,
the default) or ``ray`` (actors on a Ray cluster, :mod:`mfrbench.ray_executor`).

Either way the driver gets the chunk results in input order and does all the writing that makes
an output's bytes (manifest, index, embedding cache), so outputs do not depend on the executor
or the cluster size. An executor is a run argument, never a recorded parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from mfrbench.errors import UserError
from mfrbench.workers import spawn_map

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")


def _no_init() -> None:
    """The initializer of a map whose function needs no per-worker state."""


@dataclass(frozen=True)
class Executor:
    """``kind`` local|ray; ``address`` the Ray cluster (``auto``, ``HOST:PORT``; None: attach to
    the local one or start it); ``actors`` Ray actors (None: one per CPU of the cluster)."""

    kind: str = "local"
    address: str | None = None
    actors: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UserError(
                f"--executor: unknown value {self.kind!r}; choose from {', '.join(EXECUTORS)}"
            )
        if self.kind == "local" and self.address is not None:
            raise UserError("--ray-address needs --executor ray")
        if self.actors is not None and self.actors < 1:
            raise UserError(f"--workers must be >= 1, got {self.actors}")

    @property
    def is_ray(self) -> bool:
        return self.kind == "ray"

    def check(self) -> Executor:
        """Ray: import it and attach to the cluster now, so that a missing package or an
        unreachable address fails before any work (local: nothing to check)."""
        if self.is_ray:
            from mfrbench.ray_executor import connect

            connect(self.address)
        return self

    def size(self, workers: int) -> int:
        """Processes a map runs on: ``workers`` locally, the actors on Ray (connects)."""
        if not self.is_ray:
            return workers
        from mfrbench.ray_executor import actor_count

        return actor_count(self.address, self.actors)

    def map(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        workers: int,
        initializer: Callable[..., Any] = _no_init,
        initargs: tuple = (),
    ) -> Iterator[R]:
        """``fn`` over ``items`` after ``initializer(*initargs)`` ran once per worker process
        (or Ray actor), results in input order. ``fn`` and the initializer must be picklable
        (module-level functions, or closures over picklable values for Ray)."""
        if not self.is_ray:
            yield from spawn_map(fn, items, workers, initializer, initargs)
            return
        from mfrbench.ray_executor import ray_map

        yield from ray_map(
            fn, items, initializer, initargs, address=self.address, actors=self.actors
        )


#: The default: today's spawned process pool.
LOCAL = Executor()


def make_executor(kind: str, address: str | None, actors: int | None = None) -> Executor:
    """The executor a command's ``--executor``/``--ray-address``/``--workers`` ask for."""
    return Executor(kind, address, actors if kind == "ray" else None)
