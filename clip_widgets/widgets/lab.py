"""Lab: the widgets together, one tab each, for a notebook or a Voila dashboard."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets
import traitlets

from ..decompose import head_grid
from ..probe import ProbePath
from ..scene_examples import scene_examples
from ..texts import text_list
from ._base import Reporting
from .atlas import AtlasWidget
from .grid import ActivationGridWidget
from .heads import HeadExplorer
from .neuron import NeuronExplorer, explorable_layers
from .pending import PendingView
from .probe import ProbeExplorer
from .surgery import SurgeryWidget
from .typographic import TypographicLab

SURGERY, NEURONS, TYPOGRAPHIC, ATLAS, PROBE, GRID, HEADS = (
    "CLIP Surgery", "Neurons", "Typographic attack", "Activation atlas", "Sparse probe", "Activation grid",
    "Attention heads",
)  # fmt: skip

# One piece of the Lab's work: the tab it is for, what it does (shown while it runs), and the
# step itself, which returns the tab's view when the tab is ready (None when more steps follow).
Step = tuple[str, str, Callable[[], ipywidgets.Widget | None]]


class Lab(Reporting, ipywidgets.Tab):
    """One model, every view: CLIP Surgery on ``image`` with ``labels``, the NeuronExplorer (with
    dataset ``examples`` when given, else examples of a few drawn world scenes from
    :func:`~clip_widgets.scene_examples.scene_examples`), the typographic lab on the same image,
    and, when given, an activation ``atlas`` and a sparse ``probe`` path over ``probe_layer`` whose
    neurons open in the explorer tab; with ``grid_layer``, an activation grid of ``image`` at that
    layer (its units open in the explorer tab; ``grid_options`` such as ``{"icon_steps": 32}`` go to
    :class:`ActivationGridWidget`: its icons are most of its cost on a CPU), and with
    ``head_images``, the attention heads of a ViT explained over those images. The grid and heads
    tabs are built the first time they are selected (``lab.grid``, ``lab.heads`` are None until
    then), so they cost nothing to a visitor who does not open them. ``probe`` is a
    :class:`~clip_widgets.probe.ProbePath` or a function of no arguments that returns one. Each view
    stays reachable as an attribute (``lab.surgery``, ``lab.explorer``, ``lab.typographic``,
    ``lab.atlas``, ``lab.probe``); a failure in a view shows in that view (its ``error``).

    With ``background=True`` the constructor returns as soon as the CLIP Surgery, typographic and
    atlas tabs are ready, so a dashboard shows in seconds; the Neurons tab (with the examples it
    collects) and then the probe are built in a background thread. Until then ``lab.explorer``
    and ``lab.probe`` are None, their tabs show what is being computed and a progress bar, and
    their titles the percentage done (these two tabs hold a box that then holds the view);
    ``busy``, ``progress`` (0 to 1) and ``status`` say the same to Python, and :meth:`wait`
    blocks until the work is done. A failure there shows in the tabs still waiting and in
    ``error``. Without ``background`` everything is built before the constructor returns, and
    failures raise."""

    busy = traitlets.Bool(False)
    """True while views are being built in the background."""
    progress = traitlets.Float(1.0, min=0.0, max=1.0)
    """How much of the background work is done, 0 to 1 (1 when there is none)."""
    status = traitlets.Unicode("")
    """What the background work is doing now; "ready" when it is done."""

    def __init__(
        self,
        session: Any,
        image: Any,
        labels: Sequence[str],
        *,
        examples: Any = None,
        atlas: Any = None,
        probe: ProbePath | Callable[[], ProbePath] | None = None,
        probe_layer: str | None = None,
        typographic_text: str = "iPod",
        explorer_layer: str | None = None,
        grid_layer: str | None = None,
        grid_options: Mapping[str, Any] | None = None,
        head_images: Sequence[Any] | None = None,
        background: bool = False,
        **explorer_kw: Any,
    ):
        labels = text_list(labels)
        self.grid: ActivationGridWidget | None = None
        self.heads: HeadExplorer | None = None
        self._on_demand: dict[str, Callable[[], ipywidgets.Widget]] = {}
        if grid_layer is not None:
            session.layers[grid_layer]  # an unknown layer is an argument error now, not on first view  # noqa: B018
            options = grid_arguments(grid_options)
            self._on_demand[GRID] = lambda: self._open_grid(session, image, grid_layer, labels, options)
        if head_images is not None:
            head_grid(session.model)  # a tower it cannot split is an argument error now
            self._on_demand[HEADS] = lambda: self._open_heads(session, head_images)
        self.surgery = SurgeryWidget(session, image, labels)
        self.typographic = TypographicLab(session, image, labels, text=typographic_text)
        self.atlas = AtlasWidget(atlas, session=session) if atlas is not None else None
        self.explorer: NeuronExplorer | None = None
        self.probe: ProbeExplorer | None = None
        self._worker: threading.Thread | None = None
        plan = self._plan(session, examples, probe, probe_layer, explorer_layer or probe_layer, explorer_kw)
        if not background:
            for _tab, _what, step in plan:
                step()
        # A tab whose view comes later holds a box that shows its progress until then: the front
        # end hides a tab's new child when the tab's child itself is replaced while selected.
        self._pending = {tab: PendingView(tab) for tab, _, _ in plan} if background else {}
        self._slots = {tab: ipywidgets.VBox([pending]) for tab, pending in self._pending.items()}
        views: list[tuple[str, ipywidgets.Widget]] = [
            (SURGERY, self.surgery),
            (NEURONS, self.explorer or self._slots[NEURONS]),
            (TYPOGRAPHIC, self.typographic),
        ]
        if self.atlas is not None:
            views.append((ATLAS, self.atlas))
        if probe is not None:
            views.append((PROBE, self.probe or self._slots[PROBE]))
        for tab in self._on_demand:
            self._slots[tab] = ipywidgets.VBox([ipywidgets.HTML(f"<p>{tab}: built when this tab is opened</p>")])
            views.append((tab, self._slots[tab]))
        self._tabs = [title for title, _ in views]
        super().__init__(children=[view for _, view in views], titles=self._tabs)
        if self._on_demand:
            self.observe(self._tab_opened, names="selected_index")
        if background:
            self.busy = True
            self._report_progress(0.0, "waiting to start")
            self._worker = threading.Thread(target=self._build, args=(plan,), name="clip-widgets-lab", daemon=True)
            self._worker.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the views built in the background are in their tabs (or have failed)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _plan(self, session: Any, examples: Any, probe: Any, probe_layer: str | None, explorer_layer: str | None,
              explorer_kw: dict[str, Any]) -> list[Step]:  # fmt: skip
        """The Neurons tab, then the probe's, as steps; the probe needs the explorer it opens neurons in."""
        found = {"examples": examples}

        def collect_examples() -> None:
            found["examples"], explorer_kw["images"] = scene_examples(session, explorable_layers(session))

        def start_explorer() -> NeuronExplorer:
            self.explorer = NeuronExplorer(session, explorer_layer, examples=found["examples"], **explorer_kw)
            return self.explorer

        def fit_probe() -> ProbeExplorer:
            path = probe() if callable(probe) else probe
            self.probe = ProbeExplorer(path, layer=probe_layer, explorer=self.explorer, on_open=self._show_explorer)
            return self.probe

        plan: list[Step] = []
        if examples is None and "images" not in explorer_kw:  # so the Neurons tab has examples to show
            plan.append((NEURONS, "collecting dataset examples over drawn world scenes", collect_examples))
        plan.append((NEURONS, "starting the neuron explorer", start_explorer))
        if probe is not None:
            what = "fitting the sparse probe" if callable(probe) else "charting the sparse probe"
            plan.append((PROBE, what, fit_probe))
        return plan

    def _build(self, plan: list[Step]) -> None:
        """The background work: each step in turn, each view into its tab as soon as it is ready."""
        try:
            for done, (tab, what, step) in enumerate(plan):
                self._report_progress(done / len(plan), f"{what} (step {done + 1} of {len(plan)})")
                view = step()
                if view is not None:
                    self._place(tab, view)
            self._report_progress(1.0, "ready")
        except Exception as exc:  # noqa: BLE001 - no caller to raise to: the tabs and ``error`` report it
            self.report(exc)
            for pending in self._pending.values():
                pending.fail(self.error)
            self.titles = tuple(f"{tab} \N{WARNING SIGN}" if tab in self._pending else tab for tab in self._tabs)
        finally:
            self.busy = False

    def _report_progress(self, progress: float, status: str) -> None:
        self.progress, self.status = progress, status
        for pending in self._pending.values():
            pending.update(status, progress)
        # "Sparse probe 67%" still fits a tab's width, where parentheses were cut off
        self.titles = tuple(f"{tab} {progress:.0%}" if tab in self._pending else tab for tab in self._tabs)

    def _place(self, tab: str, view: ipywidgets.Widget) -> None:
        """Show ``view`` in ``tab`` in place of its progress view."""
        self._slots[tab].children = (view,)
        self._pending.pop(tab).close()
        self.set_title(self._tabs.index(tab), tab)

    def _show_explorer(self, _unit: int) -> None:
        self.selected_index = 1  # the Neurons tab

    def _tab_opened(self, change: dict[str, Any]) -> None:
        index = change["new"]
        tab = self._tabs[index] if index is not None and 0 <= index < len(self._tabs) else None
        build = self._on_demand.pop(tab, None)
        if build is None:
            return
        with self.reporting(raises=False):  # a failure shows in ``error``; the tab says so too
            try:
                self._slots[tab].children = (build(),)
            except Exception as exc:
                self._slots[tab].children = (ipywidgets.HTML(f"<p>{tab} failed: {html.escape(str(exc))}</p>"),)
                raise

    def open_tab(self, title: str) -> ipywidgets.Widget:
        """Select the tab titled ``title`` (building it if it is built on demand) and return its view."""
        if title not in self._tabs:
            raise ValueError(f"no tab {title!r}; the tabs are {self._tabs}")
        self.selected_index = self._tabs.index(title)
        child = self.children[self._tabs.index(title)]
        return child.children[0] if title in self._slots and child.children else child

    def _open_grid(self, session: Any, image: Any, layer: str, labels: list[str], options: dict[str, Any]
                   ) -> ActivationGridWidget:  # fmt: skip
        self.grid = ActivationGridWidget(session, image, layer, classes=labels, explorer=self.explorer,
                                         on_open=self._show_explorer, **options)  # fmt: skip
        return self.grid

    def _open_heads(self, session: Any, images: Sequence[Any]) -> HeadExplorer:
        self.heads = HeadExplorer(session, images, background=True)
        return self.heads


GRID_OPTIONS = ("top", "icon_steps", "icon_px")


def grid_arguments(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``grid_options`` checked now: a misspelt option is an argument error, not a failure on first view."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(GRID_OPTIONS))
    if unknown:
        raise TypeError(f"unknown grid_options {unknown}; the options are {list(GRID_OPTIONS)}")
    return options
