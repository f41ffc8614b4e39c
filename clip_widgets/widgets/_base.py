"""What every clip_widgets widget shares: the bundled front end, strict keyword arguments and one
rule for reporting failures (see :class:`WidgetBase`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anywidget
import traitlets

STATIC = Path(__file__).resolve().parent.parent / "static"

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_UNSET = object()


class Reporting(traitlets.HasTraits):
    """The error rule of :class:`WidgetBase`, for widgets that cannot derive from it (containers
    such as :class:`~clip_widgets.widgets.ProbeExplorer`): an ``error`` trait, ``last_exception``
    and :meth:`reporting`."""

    error = traitlets.Unicode("")
    """The last error, shown in the widget; empty when all is well."""
    last_exception: BaseException | None = None
    """The exception behind ``error``, with its traceback, for debugging."""
    _error_traits: frozenset[str] = frozenset()  # the settings whose failed assignment ``error`` is about

    @contextmanager
    def reporting(self, *, raises: bool = True, clears: bool = True, traits: Iterable[str] = ()) -> Iterator[None]:
        """Run an entry point: a failure sets ``error`` (and ``last_exception``) and is re-raised
        unless ``raises`` is false. A success clears ``error`` when ``clears``, or when it set
        one of ``traits`` and the error came from an assignment to one of them; either way only
        an error that was showing when it began (one reported meanwhile, say by work in the
        background that this entry point started and that failed fast, is news)."""
        traits = frozenset(traits)
        showing = self.last_exception
        try:
            yield
        except Exception as exc:
            self.report(exc, traits)
            if raises:
                raise
        else:
            if self.error and self.last_exception is showing and (clears or traits & self._error_traits):
                self._error_traits = frozenset()
                self.set_trait("error", "")

    def report(self, exc: BaseException, traits: Iterable[str] = ()) -> None:
        """Show ``exc`` in the widget's error banner (``traits``: the settings it is about)."""
        log.debug("%s failed", type(self).__name__, exc_info=exc)
        self.last_exception = exc
        self._error_traits = frozenset(traits)
        self.set_trait("error", f"{type(exc).__name__}: {exc}")


def entry_point(method: F | None = None, *, clears: bool = True) -> Any:
    """Mark a widget method as an entry point: it runs under :meth:`Reporting.reporting`.
    ``@entry_point`` for actions (a success clears ``error``), ``@entry_point(clears=False)``
    for queries that change nothing the user sees, and for validators (a good value clears
    through its assignment). Goes under ``@traitlets.observe``/``@traitlets.validate``."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def wrapper(self: Reporting, *args: Any, **kwargs: Any) -> Any:
            with self.reporting(clears=clears):
                return func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap(method) if method is not None else wrap


class WidgetBase(Reporting, anywidget.AnyWidget):
    """An anywidget whose unknown keyword arguments are an error, not a silent no-op, and whose
    failures always reach the user.

    The rule for failures. Entry points are the public methods, every trait assignment (from
    Python or from the browser), the handlers of browser messages and background work. When one
    fails, ``error`` reads ``"<ExceptionType>: <message>"`` (shown in the widget's banner) and
    ``last_exception`` keeps the exception; the widget stays usable. A setting whose value was
    refused, or whose recomputation failed, keeps its last good value (so the view matches what
    it shows, and sending the same value again retries). Then:

    * a call from Python (a method, or an assignment such as ``widget.labels = [...]``) also
      raises the exception, as Python code expects;
    * a change or message from the browser, and work in a background thread, do not raise
      (nobody would see the traceback); the browser is sent the value the kernel kept;
    * a constructor raises for arguments it cannot use (there is no widget yet to show them),
      while the first computation it starts reports like a browser change.

    What clears ``error``: an action that succeeds (a method call, a recomputation), or a good
    value for the very setting whose value was refused or failed. Queries (tiles or hover
    details the browser asks for) and other settings (an opacity) leave it alone, so a banner
    about the maps stays until the maps are right. Subclasses mark their entry points with
    :func:`entry_point`; trait assignments and browser traffic are covered here once.
    """

    error = traitlets.Unicode("").tag(sync=True)
    """The last error, shown in the widget; empty when all is well."""

    def __init__(self, **traits: Any):
        valid = set(self.class_trait_names(sync=True)) - set(anywidget.AnyWidget.class_trait_names(sync=True))
        unknown = sorted(set(traits) - valid)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"valid traits: {', '.join(sorted(valid))}"
            )
        super().__init__(**traits)

    def __setattr__(self, name: str, value: Any) -> None:
        trait = getattr(type(self), name, None)
        if name == "error" or not isinstance(trait, traitlets.TraitType) or not trait.metadata.get("sync"):
            super().__setattr__(name, value)
            return
        # a refused value (wrong type, out of range) or a failed recomputation: report, keep the
        # last good value, raise
        before = {name: self._trait_values.get(name, _UNSET)}
        try:
            with self.reporting(clears=False, traits=(name,)):
                super().__setattr__(name, value)
        except Exception:
            self._restore(before)
            raise

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Changes from the browser: failures are reported, never raised into the kernel's log."""
        names = [name for name in sync_data if name in self.keys]
        before = {name: self._trait_values.get(name, _UNSET) for name in names}
        failed = False
        with self.reporting(raises=False, clears=False, traits=names):
            try:
                super().set_state(sync_data)
            except Exception:
                failed = True
                raise
        if failed:
            self._restore(before)
            self.send_state(names)  # the browser shows the value it sent: show it what the kernel kept

    def _restore(self, values: dict[str, Any]) -> None:
        """Put settings back to ``values`` without running their observers again (they ran for
        the value that failed), and tell the browser."""
        current = self._trait_values
        changed = [name for name, old in values.items() if old is not _UNSET and current.get(name) is not old]
        for name in changed:
            current[name] = values[name]
        if changed:
            self.send_state(changed)

    def save_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write this widget as one HTML page that opens from ``file://`` with no kernel and no
        network: what it shows now, redrawn in the page as its controls change (see
        :mod:`~clip_widgets.widgets.static_page`)."""
        from .static_page import save_html  # noqa: PLC0415 - the page writer is rarely needed

        return save_html(self, path, title)

    def _handle_custom_msg(self, content: Any, buffers: list) -> None:
        with self.reporting(raises=False, clears=False):  # a request from the browser is a query
            super()._handle_custom_msg(content, buffers)
