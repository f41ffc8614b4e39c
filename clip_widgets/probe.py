"""Sparse linear probes: which neurons of a layer compose a class (Goh et al., 2021).

    features = pooled_activations(session, images, "blocks.4")
    path = sparse_probe(features, labels, classes)     # L1 logistic regression along a path of C
    path.accuracy, path.neurons                        # held-out accuracy vs neurons used, sparse to dense
    path.top_neurons("cat", step=2)                    # [(unit, weight), ...] of one class at one step
    path.strongest_neurons("cat", step=2)              # the same with the neurons that push against it

Features are standardized before fitting, so weights compare across neurons.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .collection import Job, collect_with
from .errors import ClipWidgetsError
from .examples import positions_of
from .texts import text_list


@torch.no_grad()
def pooled_activations(session: Any, images: Sequence[Any], layer: str, *, batch_size: int = 32,
                       progress: bool = True, engine: Any = "local") -> np.ndarray:  # fmt: skip
    """``(N, units)``: each image's activations of ``layer`` averaged over its positions (a
    ResNet map's positions, a ViT's patch tokens; vectors as they are).

    ``engine="ray"`` (or a :class:`clip_widgets.ray_engine.RayEngine`) computes them on a Ray
    cluster; ``images`` are then files or a ``ray.data.Dataset`` (see
    :func:`clip_widgets.examples.collect_examples`), and the rows come back in their order."""
    session.layers[layer]  # unknown names raise, listing the valid ones  # noqa: B018
    if engine != "local":
        return _pooled_elsewhere(session, images, layer, batch_size, progress, engine)
    rows = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"pooling {layer}", disable=not progress):
        captured, _ = session.layers.forward(session.preprocess(list(images[start : start + batch_size])), layer)
        rows.append(pool_positions(captured[layer]))
    return np.concatenate(rows)


def pooled_rows(session: Any, pixels: torch.Tensor, indices: list[int], *, layer: str) -> dict:
    """``{"pooled": (N, units)}``: the layer averaged over each image's positions (see
    :func:`pool_positions`); a collection's compute (:data:`clip_widgets.collection.Compute`)."""
    with torch.no_grad():
        captured, _ = session.layers.forward(pixels, layer)
    return {"pooled": torch.from_numpy(pool_positions(captured[layer]))}


def _pooled_elsewhere(
    session: Any, images: Any, layer: str, batch_size: int, progress: bool, engine: Any
) -> np.ndarray:
    rows: dict[int, np.ndarray] = {}
    unreadable: list[str] = []

    def write(results: dict | None, indices: list[int], lines: list[dict], length: int) -> None:
        unreadable.extend(f"{line['source']} ({line['error']})" for line in lines if "error" in line)
        for i, row in zip(indices, [] if results is None else results["pooled"].numpy(), strict=True):
            rows[i] = row

    bar = tqdm(desc=f"pooling {layer}", unit="img", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="clip-widgets-pool-") as shards:
        job = Job(session, images, 0, batch_size, partial(pooled_rows, layer=layer), write, lambda: None, bar)
        finished = collect_with(engine, job, every=1, workers=None, shard_dir=Path(shards))
    if not finished:  # nothing to resume from: stop as the in-process loop does
        raise KeyboardInterrupt
    if unreadable:  # the probe needs one row per image, so nothing is skipped silently
        raise ClipWidgetsError(f"could not read {len(unreadable)} images: {'; '.join(unreadable[:5])}")
    return np.stack([rows[i] for i in range(len(rows))]) if rows else np.zeros((0, session.layers[layer].units))


def pool_positions(activations: torch.Tensor) -> np.ndarray:
    """``(N, units)``: a layer's output averaged over its image positions (see :func:`positions_of`)."""
    values, _ = positions_of(activations.float())
    return values.mean(1).cpu().numpy()


@dataclass
class ProbePath:
    """Sparse-to-dense probes: for each regularization strength ``Cs[i]``, the held-out
    ``accuracy[i]``, the number of ``neurons[i]`` with a non-zero weight for any class, and the
    weights ``coefs[i]`` ``(classes, units)``."""

    classes: list[str]
    Cs: np.ndarray
    accuracy: np.ndarray
    neurons: np.ndarray
    coefs: np.ndarray

    def top_neurons(self, class_name: str, step: int = -1, k: int = 10) -> list[tuple[int, float]]:
        """The neurons with the largest positive weights for ``class_name`` at path step ``step``."""
        if class_name not in self.classes:
            raise KeyError(f"unknown class {class_name!r}; the probe has {self.classes}")
        weights = self.coefs[step][self.classes.index(class_name)]
        order = [int(i) for i in np.argsort(-weights)[:k] if weights[i] > 0]
        return [(i, float(weights[i])) for i in order]

    def strongest_neurons(self, class_name: str, step: int = -1, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` neurons with the largest weights in magnitude for ``class_name`` at path step
        ``step``, those that push towards the class (positive) and those that push away from it
        (negative), from the largest weight to the most negative; zero weights are left out."""
        if class_name not in self.classes:
            raise KeyError(f"unknown class {class_name!r}; the probe has {self.classes}")
        weights = self.coefs[step][self.classes.index(class_name)]
        strongest = [int(i) for i in np.argsort(-np.abs(weights), kind="stable")[:k] if weights[i] != 0]
        return [(i, float(weights[i])) for i in sorted(strongest, key=lambda i: -weights[i])]


def sparse_probe(
    features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    *,
    Cs: Sequence[float] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    progress: bool = True,
) -> ProbePath:
    """Fit L1-regularized logistic regressions (scikit-learn, saga) from ``features`` to
    ``labels`` (indices into ``classes``) along ``Cs`` (default: 10 steps from 1e-3 to 10),
    scoring each on a held-out ``test_fraction`` stratified by class."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415 - only probes need it
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    classes = text_list(classes, "classes")  # a bare string would be read as one class per letter
    x = np.asarray(features, np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features must be (N, units) with one label each; got {x.shape} and {len(y)} labels")
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"labels must index the {len(classes)} classes; got values from {y.min()} to {y.max()}")
    Cs = np.asarray(Cs if Cs is not None else np.logspace(-3, 1, 10), np.float64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    accuracy, neurons, coefs = [], [], []
    for C in tqdm(Cs, desc="sparse probe", disable=not progress):
        model = _l1_logistic(float(C), seed)
        model.fit(x_train, y_train)
        coef = np.zeros((len(classes), x.shape[1]))
        if model.coef_.shape[0] == 1:  # binary: one row for the second class
            coef[model.classes_[1]], coef[model.classes_[0]] = model.coef_[0], -model.coef_[0]
        else:
            coef[model.classes_] = model.coef_
        accuracy.append(float((model.predict(x_test) == y_test).mean()))
        neurons.append(int((np.abs(coef) > 0).any(0).sum()))
        coefs.append(coef)
    return ProbePath(list(classes), Cs, np.array(accuracy), np.array(neurons), np.stack(coefs))


def _l1_logistic(C: float, seed: int):
    """An L1 logistic regression; scikit-learn 1.8 moved the choice of penalty into ``l1_ratio``."""
    import sklearn  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    version = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if version >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(**penalty, solver="saga", C=C, max_iter=3000, tol=1e-3, random_state=seed)
