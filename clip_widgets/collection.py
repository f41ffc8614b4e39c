"""What the resumable collections (dataset examples, atlas activations) share: reading a batch
of sources where one bad item skips only itself, the sources log cut back to the last
checkpoint, and the loop that checkpoints every few batches and stops cleanly on Ctrl-C.

:func:`run_collection` runs that loop one of two ways. Sequentially (``workers=0``): each batch is
read, preprocessed, run through the model and written, one after another. Pipelined
(``workers>0``): a pool of ``workers`` threads reads and preprocesses the next batches while the
model runs (PIL decoding and resizing release the GIL), pixels reach a CUDA device through pinned
memory with non-blocking copies, and one writer thread applies each batch's results (table
merges, store rows, log lines) in order while the next forward runs. At most ``2 * workers``
batches are being read and 2 are waiting to be written, so memory stays bounded. Results, their
order and the checkpoints are the same either way: a checkpoint waits until the writer has
applied every batch before it, and a source that fails (or Ctrl-C) is raised only after the
batches read before it are done, as in the sequential loop."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from .images import _expand, load_image, skip_warning, transform_image

Results = dict[str, Any]
"""What a collection computes for a batch: named arrays (tensors, or numpy arrays when they came
from another process) with one row per image that was read, in the order of its indices."""
Compute = Callable[[Any, torch.Tensor, list[int]], Results]
"""``compute(session, pixels, indices)``: a batch's :data:`Results`. A plain function of its
arguments (no closure over a session), so another process can run it on its own model copy."""
Write = Callable[[Results | None, list[int], list[dict], int], None]
"""``write(results, indices, lines, batch_length)``: apply a batch to the store (None: nothing read)."""

__all__ = [
    "ENGINES",
    "Compute",
    "Job",
    "Results",
    "Write",
    "collect_with",
    "default_workers",
    "describe",
    "pending_batches",
    "prefetched",
    "read_batch",
    "run_checkpointed",
    "run_collection",
    "source_line",
    "trim_log",
    "write_log",
    "Writer",
]


def describe(source: Any, index: int) -> str:
    """How the sources log names an item: its path, or its place in an in-memory stream."""
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"


def pending_batches(sources: Any, done: int, size: int) -> Iterator[list[tuple[int, Any]]]:
    """``(index, source)`` batches of the items after the first ``done``."""
    stream = islice(enumerate(_expand(sources)), done, None)
    while batch := list(islice(stream, size)):
        yield batch


def source_line(source: Any, index: int) -> dict:
    """The sources-log line of an item that was read: its name, and whether only the caller's
    iterable holds it."""
    name = describe(source, index)
    return {"source": name} if isinstance(source, (str, os.PathLike)) else {"source": name, "in_memory": True}


def read_batch(session: Any, batch: list[tuple[int, Any]]) -> tuple[torch.Tensor | None, list[int], list[dict]]:
    """Read and preprocess each item on its own: the pixels of those that could be used (None if
    none), their indices, and one sources-log line per item (its name, or why it was skipped)."""
    images, indices, lines = [], [], []
    for index, source in batch:
        try:  # reading and preprocessing concern this item alone: a failure skips only it
            images.append(session.preprocess(load_image(source)))
        except Exception as e:  # noqa: BLE001 - named in the warning and in the store
            name = describe(source, index)
            lines.append({"source": name, "error": skip_warning(name, e)})
            continue
        indices.append(index)
        lines.append(source_line(source, index))
    return (torch.cat(images) if images else None), indices, lines


def write_log(log, lines: Iterable[dict]) -> None:
    log.write("".join(json.dumps(line) + "\n" for line in lines))


def trim_log(path: Path, keep: int) -> None:
    """Cut the sources log back to its first ``keep`` lines: items after the checkpoint are redone."""
    with path.open("a+") as f:
        f.seek(0)
        kept = f.read().splitlines()[:keep]
    path.write_text("".join(line + "\n" for line in kept))


def run_checkpointed(
    batches: Iterable[Any],
    process: Callable[[Any], None],
    save: Callable[[], None],
    bar: Any,
    every: int,
    count: Callable[[Any], int] = len,
) -> bool:
    """``process`` each batch, ``save`` every ``every`` batches and at the end. Ctrl-C stops
    between items; a batch cut off half-way is not saved (the last checkpoint stands, and the
    batch is redone on resume), so a store never holds part of a batch. False if interrupted."""
    since_save, consistent = 0, True
    try:
        for batch in batches:
            consistent = False
            process(batch)
            consistent = True
            bar.update(count(batch))
            since_save += 1
            if since_save >= every:
                save()
                since_save = 0
    except KeyboardInterrupt:
        bar.write(f"interrupted after {bar.n} images; run the same call again to resume")
        return False
    finally:
        bar.close()
        if consistent:
            save()
    return True


def _read_pixels(session: Any, batch: list[tuple[int, Any]]) -> tuple[torch.Tensor | None, list[int], list, list]:
    """A reader thread's part of :func:`read_batch`: CPU pixels (pinned when the session is on
    CUDA), indices, log lines, and the failures, warned about later on the caller's thread."""
    images, indices, lines, failures = [], [], [], []
    for index, source in batch:
        name = describe(source, index)
        try:  # as session.preprocess(load_image(source)) does, without the copy to the device
            images.append(transform_image(session._transform, load_image(load_image(source))))
        except Exception as e:  # noqa: BLE001 - named in the warning and in the store
            failures.append((len(lines), name, e))
            lines.append(None)
            continue
        indices.append(index)
        lines.append(source_line(source, index))
    pixels = torch.stack(images) if images else None
    if pixels is not None and session.device.type == "cuda":
        pixels = pixels.pin_memory()
    return pixels, indices, lines, failures


def prefetched(session: Any, batches: Iterable[list], workers: int) -> Iterator[tuple]:
    """``(batch, pixels, indices, lines)`` like :func:`read_batch` for each batch, in order, read by
    ``workers`` threads up to ``2 * workers`` batches ahead. ``batches`` itself is drawn on the
    caller's thread; if drawing fails (or is interrupted), the batches drawn before are still
    yielded, then the error is raised."""
    stream, pending, failure, exhausted = iter(batches), deque(), None, False
    pool = ThreadPoolExecutor(workers, thread_name_prefix="clip-widgets-read")
    try:
        while True:
            while not exhausted and len(pending) < 2 * workers:
                try:
                    batch = next(stream)
                except StopIteration:
                    exhausted = True
                except BaseException as e:  # noqa: BLE001 - raised once the batches before it are done
                    failure, exhausted = e, True
                else:
                    pending.append((batch, pool.submit(_read_pixels, session, batch)))
            if not pending:
                break
            batch, future = pending.popleft()
            pixels, indices, lines, failures = future.result()
            for at, name, error in failures:
                lines[at] = {"source": name, "error": skip_warning(name, error)}
            if pixels is not None:
                pixels = pixels.to(session.device, non_blocking=True).to(session.dtype)
            yield batch, pixels, indices, lines
        if failure is not None:
            raise failure
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


class Writer:
    """One thread that runs submitted jobs in order, at most ``depth`` waiting. A job's error is
    raised by the next :meth:`submit` or :meth:`drain`, and later jobs are dropped."""

    def __init__(self, depth: int = 2):
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="clip-widgets-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e
            finally:
                self._jobs.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, job: Callable[[], None]) -> None:
        self._check()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait until every submitted job has run; raise the first error of one."""
        self._jobs.join()
        self._check()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()


@dataclass
class Job:
    """One collection, as every engine runs it: the items of ``sources`` after the first
    ``done``, in batches of ``batch_size``; ``compute`` runs the model on a batch (skipped when
    no item of it could be read), ``write(results, indices, lines, batch_length)`` applies the
    results to the store, in stream order, ``save()`` checkpoints and ``bar`` shows progress."""

    session: Any
    sources: Any
    done: int
    batch_size: int
    compute: Compute
    write: Write
    save: Callable[[], None]
    bar: Any


def run_collection(job: Job, every: int, workers: int) -> bool:
    """Run ``job`` in this process: ``compute`` on the caller's thread, ``write`` on the writer
    thread when ``workers > 0`` (see the module notes); checkpoints as in
    :func:`run_checkpointed` (False if interrupted)."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (sequential) or more, got {workers}")
    session, compute, write, save, bar = job.session, job.compute, job.write, job.save, job.bar
    batches = pending_batches(job.sources, job.done, job.batch_size)
    if workers == 0:

        def process(batch: list) -> None:
            pixels, indices, lines = read_batch(session, batch)
            write(None if pixels is None else compute(session, pixels, indices), indices, lines, len(batch))

        return run_checkpointed(batches, process, save, bar, every)

    writer = Writer()
    items = prefetched(session, batches, workers)

    def process_read(item: tuple) -> None:
        batch, pixels, indices, lines = item
        result = None if pixels is None else compute(session, pixels, indices)
        writer.submit(lambda: write(result, indices, lines, len(batch)))

    def drained_save() -> None:
        writer.drain()  # the checkpoint includes exactly the batches handed on before it
        save()

    try:
        return run_checkpointed(items, process_read, drained_save, bar, every, count=lambda item: len(item[0]))
    finally:
        items.close()
        writer.close()


ENGINES = ("local", "ray")


def collect_with(engine: Any, job: Job, *, every: int, workers: int | None, shard_dir: Path) -> bool:
    """Run ``job`` on ``engine``: ``"local"`` (this process, :func:`run_collection`), or
    ``"ray"`` / a :class:`clip_widgets.ray_engine.RayEngine` (Ray Data, shards kept in
    ``shard_dir`` until they are merged in order). The store is the same either way. False if
    Ctrl-C stopped it (the store holds the last checkpoint; the same call resumes)."""
    if isinstance(engine, str) and engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(map(repr, ENGINES))} or a RayEngine")
    if engine == "local":
        workers = default_workers(job.session) if workers is None else workers
        return run_collection(job, every, workers)
    from .ray_engine import as_ray_engine  # Ray is optional: imported only when asked for

    return as_ray_engine(engine).run(job, shard_dir=shard_dir)


def default_workers(session: Any) -> int:
    """Reader threads for a collection when none are asked for: on CUDA several (the model runs
    on the GPU, so the cores are free to decode ahead of it: up to 8, leaving two cores for this
    thread and the writer); on the CPU one when there are cores to spare beside the model's own
    threads, else none (on two cores reading ahead only competes with the forward pass for the
    same cores; see bench/bench_collection.py)."""
    cores = os.cpu_count() or 1
    if session.device.type == "cuda":
        return max(1, min(8, cores - 2))
    return 1 if cores >= 4 else 0
