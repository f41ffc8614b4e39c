"""Collections on Ray Data: many processes (and machines, and GPUs) read images and run the model;
this process merges what they find into the same on-disk stores the in-process engine writes.

    from clip_widgets.ray_engine import RayEngine
    collect_examples(session, "photos/", ["layer4"], "store/", engine=RayEngine(actors=4))

The images become a Ray Dataset of ``(index, source)`` rows (from a folder or a list of paths), or
of the rows of a Dataset you pass (an ``image`` column, as ``ray.data.read_images`` gives, and a
``path`` column if it has one). A pool of tasks decodes and preprocesses them; ``map_batches``
runs the model on an actor pool, one copy of the session per actor (on its own GPU when the
cluster has GPUs). Each actor returns, per image, what the collection computes (a unit's extremes,
the picked activation rows), never the layer itself.

The stream is cut into shards of ``shard_size`` items. A finished shard is written to the
store's ``shards/`` folder (atomically) and merged into the store in stream order, with a
checkpoint after each shard; its file is then removed. A run that is killed loses at most the
shards in flight: on resume, merged shards are skipped, finished ones are read from their files,
and only the rest are computed again, so nothing is lost or counted twice. The store equals the
in-process engine's: the same items, the same top-k per unit (ties go to the earlier image), the
same activation rows.

Ray connects with ``ray.init(address=engine.address)`` unless it is running already: set
``address`` (or ``RAY_ADDRESS``) to use a cluster; by default it starts one on this machine.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .collection import Compute, Job, source_line
from .errors import ClipWidgetsError
from .images import _expand, load_image, skip_reason, skip_warning, transform_image

__all__ = ["RayEngine", "as_ray_engine"]

_SHARD_PREFIX = "shard-"
_RESULT = "result:"  # prefix of the computed columns in the actors' output


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as e:  # a clear way out instead of a bare ModuleNotFoundError
        raise ClipWidgetsError(
            "engine='ray' needs Ray Data: pip install 'clip_widgets[ray]' (or 'ray[data]'); "
            "engine='local' runs without it"
        ) from e
    return ray


@dataclass(frozen=True)
class RayEngine:
    """How a collection runs on Ray (see the module notes)."""

    actors: int | None = None
    """Model copies: None for one per GPU of the cluster, or one per two CPUs without GPUs."""
    shard_size: int = 1024
    """Items per shard: the unit of resumption and of checkpoints."""
    gpus_per_actor: float | None = None
    """None: 1 when the cluster has GPUs, else 0."""
    cpus_per_actor: float = 1.0
    """CPUs each actor reserves; its torch uses as many threads."""
    address: str | None = None
    """Passed to ``ray.init`` when Ray is not running yet (None: ``RAY_ADDRESS`` or a local cluster)."""

    def __post_init__(self) -> None:
        if self.shard_size < 1 or (self.actors is not None and self.actors < 1):
            raise ValueError(f"shard_size and actors must be positive, got {self.shard_size}, {self.actors}")

    def _resources(self, ray) -> tuple[int, float]:
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        cluster = ray.cluster_resources()
        gpus = self.gpus_per_actor if self.gpus_per_actor is not None else (1.0 if cluster.get("GPU", 0) else 0.0)
        if self.actors is not None:
            return self.actors, gpus
        if gpus:
            return max(1, int(cluster["GPU"] // gpus)), gpus
        return max(1, int(cluster.get("CPU", 1) // 2)), gpus

    def run(self, job: Job, *, shard_dir: Path) -> bool:
        """Compute every item of ``job`` after the first ``done`` and hand each shard to
        ``write`` in ``batch_size`` slices, in stream order, with ``save()`` after each (items of
        shard files a killed run left are read, not computed). False if Ctrl-C stopped it."""
        session, batch_size, bar = job.session, job.batch_size, job.bar
        ray = _ray()
        actors, gpus = self._resources(ray)
        ray.data.DataContext.get_current().enable_progress_bars = False  # the collection shows its own
        rows, total = _source_rows(ray, job.sources)
        bounds = _shard_bounds(job.done, total, self.shard_size)
        shard_dir.mkdir(parents=True, exist_ok=True)
        finished = _finished_shards(shard_dir, bounds)
        pending = [b for b in bounds if b not in finished]
        bar.update(sum(stop - start for start, stop in finished))

        merged = _Merger(bounds, shard_dir, batch_size, job.write, job.save, bar)
        try:
            merged.merge_ready()
            if pending:
                rows = rows.map_batches(_in_shards, fn_kwargs={"bounds": pending}, batch_format="numpy")
                pixels = rows.map_batches(_read_rows, fn_kwargs={"preprocessing": _Preprocessing(session)},
                                          batch_size=batch_size, batch_format="numpy")  # fmt: skip
                results = pixels.map_batches(
                    _Replica,
                    fn_constructor_kwargs={
                        "session": _shippable(session),
                        "compute": job.compute,
                        "threads": self.cpus_per_actor,
                        "dtype": session.dtype,
                    },
                    batch_size=batch_size,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=actors),
                    num_gpus=gpus,
                    num_cpus=self.cpus_per_actor,
                )
                for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
                    merged.add(batch)
                    bar.update(len(batch["index"]))
        except KeyboardInterrupt:
            merged.interrupted = True
            bar.write(f"interrupted after {merged.done} images merged; run the same call again to resume")
        finally:
            bar.close()
        if merged.remaining and not merged.interrupted:
            raise ClipWidgetsError(f"the Ray run ended with {merged.remaining} shards unmerged; run it again to resume")
        return not merged.interrupted


def as_ray_engine(engine: Any) -> RayEngine:
    if isinstance(engine, RayEngine):
        return engine
    if engine == "ray":
        return RayEngine()
    raise ValueError(f"unknown engine {engine!r}; choose 'local', 'ray' or a RayEngine")


# -- the rows -----------------------------------------------------------------------------------


def _source_rows(ray, sources: Any) -> tuple[Any, int]:
    """A Dataset with an ``index`` column for ``sources``, and its length."""
    if isinstance(sources, ray.data.Dataset):
        columns = sources.columns()
        if "image" not in columns:
            raise ClipWidgetsError(f"a Dataset for a collection needs an 'image' column; it has {columns}")
        if "index" in columns:  # the user's own numbering, 0 to n - 1
            return sources, sources.count()
        if "path" not in columns:
            raise ClipWidgetsError(
                "a Dataset for a collection needs a stable order, which Ray Data does not keep: give it an "
                "'index' column (0 to n - 1), or a 'path' column (ray.data.read_images(..., include_paths=True))"
            )
        files = sorted(sources.input_files())  # the order of the files, not of the rows, is stable
        return sources.map_batches(_index_by_path, fn_kwargs={"files": files}, batch_format="numpy"), len(files)
    items = list(_expand(sources))
    loose = [i for i, item in enumerate(items) if not isinstance(item, (str, os.PathLike))]
    if loose:
        raise ClipWidgetsError(
            f"the Ray engine reads files or a ray.data.Dataset; item {loose[0]} is a {type(items[loose[0]]).__name__}. "
            "Save the images to a folder, pass ray.data.from_items([{'image': array}, ...]), or use engine='local'"
        )
    return ray.data.from_items([{"index": i, "source": os.fspath(p)} for i, p in enumerate(items)]), len(items)


def _shard_bounds(done: int, total: int, size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the shards after item ``done``: cut at multiples of ``size``, so a
    resumed run cuts the same shards as the run it resumes."""
    cuts = [done, *range((done // size + 1) * size, total, size), total]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _shard_path(shard_dir: Path, bounds: tuple[int, int]) -> Path:
    return shard_dir / f"{_SHARD_PREFIX}{bounds[0]:012d}-{bounds[1]:012d}.npz"


def _finished_shards(shard_dir: Path, bounds: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The shards a killed run finished; files for other bounds (merged already, or cut with
    another shard size) are removed."""
    wanted = {_shard_path(shard_dir, b).name: b for b in bounds}
    finished = set()
    for path in shard_dir.glob(f"{_SHARD_PREFIX}*.npz"):
        if path.name in wanted:
            finished.add(wanted[path.name])
        else:
            path.unlink()
    for path in shard_dir.glob("*.tmp.npz"):  # a write cut off by the kill
        path.unlink()
    return finished


def _index_by_path(batch: dict, files: list[str]) -> dict:
    """Number a Dataset's rows by their file's place among its sorted input files."""
    batch["index"] = np.searchsorted(np.asarray(files), batch["path"].astype(str)).astype(np.int64)
    return batch


def _in_shards(batch: dict, bounds: list[tuple[int, int]]) -> dict:
    """The rows of ``batch`` whose index lies in one of the shards ``bounds``."""
    starts = np.array([a for a, _ in bounds])
    stops = np.array([b for _, b in bounds])
    at = np.searchsorted(starts, batch["index"], side="right") - 1
    keep = (at >= 0) & (batch["index"] < stops[np.maximum(at, 0)])
    return {key: value[keep] for key, value in batch.items()}


# -- the workers --------------------------------------------------------------------------------


class _Preprocessing:
    """What a reading task needs of the session: its transform, without the model."""

    def __init__(self, session: Any):
        self.transform = session._transform
        self.size = session.image_size


def _read_rows(batch: dict, preprocessing: _Preprocessing) -> dict:
    """Decode and preprocess a batch of rows; an item that fails is marked with its error, and its
    pixels left zero, so the other items go on."""
    count = len(batch["index"])
    pixels = np.zeros((count, 3, *preprocessing.size), np.float32)
    errors, names, in_memory = [], [], []
    for i in range(count):
        index = int(batch["index"][i])
        source = batch["source"][i] if "source" in batch else batch["image"][i]
        line = source_line(str(batch["path"][i]) if "path" in batch else source, index)
        try:
            pixels[i] = transform_image(preprocessing.transform, load_image(source)).numpy()
            errors.append("")
        except Exception as e:  # noqa: BLE001 - the item is named and skipped, as in-process
            errors.append(skip_reason(e))
        names.append(line["source"])
        in_memory.append(bool(line.get("in_memory")))
    return {"index": batch["index"].astype(np.int64), "pixels": pixels, "error": np.array(errors, object),
            "source": np.array(names, object), "in_memory": np.array(in_memory)}  # fmt: skip


def _shippable(session: Any) -> Any:
    """The session as the actors receive it: on the CPU, so an actor without a GPU can load it
    (each actor moves its copy to its own GPU)."""
    if session.device.type == "cpu":
        return session
    from .session import ModelSession

    model = copy.deepcopy(session.model).to("cpu", torch.float32)
    return ModelSession(model, tokenizer=session.tokenizer, preprocess_cfg=session.preprocess_cfg, name=session.name,
                        device="cpu")  # fmt: skip


class _Replica:
    """One actor's copy of the session, on the actor's GPU when it was given one, in the
    caller's dtype."""

    def __init__(self, session: Any, compute: Compute, threads: float, dtype: torch.dtype):
        from .session import ModelSession

        torch.set_num_threads(max(1, int(threads)))
        if torch.cuda.is_available():
            session = ModelSession(session.model, tokenizer=session.tokenizer, preprocess_cfg=session.preprocess_cfg,
                                   name=session.name, device="cuda", dtype=dtype)  # fmt: skip
        self.session, self.compute = session, compute
        # the shapes of what compute returns, so batches in which nothing could be read fill alike
        probe = self._run(np.zeros((1, 3, *session.image_size), np.float32), [0])
        self.blank = {key: np.zeros(value.shape[1:], value.dtype) for key, value in probe.items()}

    def _run(self, pixels: np.ndarray, indices: list[int]) -> dict[str, np.ndarray]:
        tensor = torch.from_numpy(pixels).to(self.session.device, self.session.dtype)
        out = self.compute(self.session, tensor, indices)
        return {key: torch.as_tensor(value).detach().cpu().numpy() for key, value in out.items()}

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        out = {key: batch[key] for key in ("index", "error", "source", "in_memory")}
        for key, blank in self.blank.items():
            out[_RESULT + key] = np.broadcast_to(blank, (len(ok), *blank.shape)).copy()
        if ok.any():
            for key, value in self._run(batch["pixels"][ok], [int(i) for i in batch["index"][ok]]).items():
                out[_RESULT + key][ok] = value
        return out


# -- merging ------------------------------------------------------------------------------------


class _Merger:
    """Gathers the actors' rows by shard, writes finished shards to disk and merges them into the
    store in stream order."""

    def __init__(self, bounds, shard_dir: Path, batch_size: int, write, save, bar):
        self.bounds, self.shard_dir, self.batch_size = bounds, shard_dir, batch_size
        self.write, self.save, self.bar = write, save, bar
        self.starts = np.array([a for a, _ in bounds], np.int64)
        self.parts: dict[int, list[dict]] = {}
        self.counts: dict[int, int] = {}
        self.next = 0  # the first shard not merged yet
        self.done = bounds[0][0] if bounds else 0
        self.interrupted = False

    @property
    def remaining(self) -> int:
        return len(self.bounds) - self.next

    def add(self, batch: dict) -> None:
        shard_of = np.searchsorted(self.starts, batch["index"], side="right") - 1
        for shard in np.unique(shard_of):
            part = {key: value[shard_of == shard] for key, value in batch.items()}
            self.parts.setdefault(int(shard), []).append(part)
            self.counts[int(shard)] = self.counts.get(int(shard), 0) + len(part["index"])
            start, stop = self.bounds[shard]
            if self.counts[int(shard)] == stop - start:
                self._finish(int(shard))
        self.merge_ready()

    def _finish(self, shard: int) -> None:
        parts = self.parts.pop(shard)
        rows = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        order = np.argsort(rows["index"], kind="stable")
        rows = {key: value[order] for key, value in rows.items()}
        path = _shard_path(self.shard_dir, self.bounds[shard])
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: (v.astype(str) if v.dtype == object else v) for k, v in rows.items()})
        os.replace(tmp, path)  # atomic: a kill leaves the whole shard or none of it

    def merge_ready(self) -> None:
        while self.next < len(self.bounds) and _shard_path(self.shard_dir, self.bounds[self.next]).is_file():
            self._merge(self.next)
            self.next += 1

    def _merge(self, shard: int) -> None:
        path = _shard_path(self.shard_dir, self.bounds[shard])
        with np.load(path) as data:
            rows = {key: data[key] for key in data.files}
        for at in range(0, len(rows["index"]), self.batch_size):
            part = {key: value[at : at + self.batch_size] for key, value in rows.items()}
            ok = part["error"] == ""
            lines = []
            for name, error, in_memory in zip(part["source"], part["error"], part["in_memory"], strict=True):
                if error:
                    lines.append({"source": str(name), "error": skip_warning(str(name), str(error))})
                else:
                    lines.append({"source": str(name), "in_memory": True} if in_memory else {"source": str(name)})
            results = {key[len(_RESULT) :]: torch.from_numpy(np.ascontiguousarray(value[ok]))
                       for key, value in part.items() if key.startswith(_RESULT)}  # fmt: skip
            indices = [int(i) for i in part["index"][ok]]
            self.write(results if indices else None, indices, lines, len(part["index"]))
        self.save()  # the checkpoint covers this shard: its file is no longer needed
        path.unlink()
        self.done = self.bounds[shard][1]
