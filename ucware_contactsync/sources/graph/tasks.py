"""A read as generator tasks: a task yields the request(s) it needs next and gets their
answers back; ``parallel`` runs several side by side, one round of requests at a time, so the
dispatcher (batch.py) can pack each round into ``$batch`` requests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..base import SourceError
from .client import Req

Task = Generator[Any, Any, Any]


class Raw(list[Any]):
    """Requests whose answers go back as they are (exceptions included), for ``parallel``."""


def parallel(tasks: list[Task]) -> Task:
    """Run generator tasks side by side, a round of requests at a time -> their results."""
    results: list[Any] = [None] * len(tasks)
    asked: dict[int, Any] = {}
    for i, t in enumerate(tasks):
        try:
            asked[i] = t.send(None)
        except StopIteration as done:
            results[i] = done.value
    while asked:
        shape = [(i, asked[i]) for i in asked]
        flat: list[Req] = []
        for _, a in shape:
            flat.extend(a if isinstance(a, list) else [a])
        answers = yield Raw(flat)
        pos = 0
        for i, a in shape:
            n = len(a) if isinstance(a, list) else 1
            part, pos = answers[pos:pos + n], pos + n
            failed = next((x for x in part if isinstance(x, SourceError)), None)
            try:
                if failed is not None:
                    asked[i] = tasks[i].throw(failed)
                else:
                    asked[i] = tasks[i].send(part if isinstance(a, list) else part[0])
            except StopIteration as done:
                results[i] = done.value
                del asked[i]
    return results
