"""Explorer: run the real transformers Trainer for one step and see the weights the probe measures.

``render_probe`` is pure (each call is one real ``Trainer`` step in this process, unless its
``result`` is passed); the explorer passes its own :class:`~lossviz.widgets.Canvas`, which keeps one
picture whose frames are drawn once. ``probe_explorer()`` wires it to a case, lengths, batch and
GA. A setting seen before is redrawn at once from the remembered run. A new setting is painted at
once too, honestly: the measured panel is grey and says "Trainer step running: nothing measured
yet", the text says the real Trainer step is running, and the intended token mean is already
drawn; the step runs in one background thread and its picture replaces the placeholder when it
is done (unless the learner has moved on: the latest setting is the one measured next).
"""

from __future__ import annotations

import threading

import ipywidgets as W

from ..measured_step import predict, verdict
from ..plots.probe import MeasuredVsPredictedPicture
from ..step_shape import fill_step, trainer_dealing
from ..trainers.hf_trainer import measure
from .base import Canvas, EdgeCase, Explorer, View, parse_list

__all__ = ["render_probe", "probe_explorer"]

_CASE_TEXT = {
    "ga": "a transformers model (num_items_in_batch)",
    "naive": "a model whose forward takes no **kwargs",
    "compute_loss": "a compute_loss that returns model(**inputs).loss",
    "packed": "DataCollatorWithFlattening (packed, position_ids)",
}
# one figure height for every batch x GA (up to 16 samples): one picture serves every setting
_HEIGHT = 4.2


def _measure(case: str, lengths: tuple[int, ...], batch: int, ga: int) -> dict:
    return measure(list(lengths), per_device_batch_size=batch, ga_steps=ga, case=case)


def _setting(case: str, lengths: str, batch: int, ga: int) -> tuple[tuple, str]:
    """``((case, lengths, batch, ga), note)``: the validated setting and what was cut or repeated."""
    if case not in _CASE_TEXT:
        raise EdgeCase(f"choose a case among {list(_CASE_TEXT)}")
    # every setting runs a real Trainer step: at most 400 tokens per sample keeps it short
    typed = parse_list(lengths, "length", low=1, high=400, example="3, 7, 20, 5")
    got, filled = fill_step(typed, batch * ga)  # batch x GA samples make one step
    note = f"\n({filled}: {', '.join(map(str, got))})" if filled else ""
    return (case, tuple(got), batch, ga), note


def render_probe(
    case: str = "ga",
    lengths: str = "3,7,20,5",
    batch: int = 2,
    ga: int = 2,
    *,
    canvas: Canvas | None = None,
    result: dict | None = None,
) -> View:
    """Measured vs predicted (lossviz's model of 5.24 for ``case``) W of one real Trainer step.

    ``result``: that step's :func:`~lossviz.trainers.hf_trainer.measure` result, if already run.
    """
    key, note = _setting(case, lengths, batch, ga)
    canvas = canvas or Canvas()
    r = result if result is not None else canvas.memo(_measure, *key)
    picture = canvas.picture("probe", lambda: MeasuredVsPredictedPicture(_HEIGHT, dpi=canvas.dpi))
    fig = picture.update(
        r["measured"],
        r["predicted"]["global"],
        titles=(f"measured: {case}", "intended: global token mean"),
        widths="auto",
    )
    shares = r["diff"]["global"]["measured_share"]
    text = (
        f"{_CASE_TEXT[case]}; sample shares measured "
        + ", ".join(f"{s:.3f}" for s in shares)
        + f"\n{verdict(r)}"
        + note
    )
    return View(figure=fig, text=text, data={"result": r}, png=canvas.png(picture))


def render_measuring(
    case: str = "ga",
    lengths: str = "3,7,20,5",
    batch: int = 2,
    ga: int = 2,
    *,
    canvas: Canvas | None = None,
) -> View:
    """The placeholder of a setting whose Trainer step is still running: nothing measured is shown.

    The measured panel is grey (no cell has a value yet) and its bars are empty; the intended
    global token mean is drawn on the Trainer's dealing, which needs no Trainer.
    """
    (case, got, batch, ga), note = _setting(case, lengths, batch, ga)
    canvas = canvas or Canvas()
    plan = trainer_dealing(len(got), per_device_batch_size=batch, ga_steps=ga)
    intended = predict(list(got), plan, "global")
    picture = canvas.picture("probe", lambda: MeasuredVsPredictedPicture(_HEIGHT, dpi=canvas.dpi))
    fig = picture.update(
        [[] for _ in got],
        intended,
        # the measured picture's titles: the frame is the same, only the cells and bars change
        titles=(f"measured: {case}", "intended: global token mean"),
        widths="auto",
        notice="Trainer step running:\nnothing measured yet",
    )
    text = (
        f"{_CASE_TEXT[case]}: the real transformers Trainer step for this setting is running; "
        "the measured panel fills in when it finishes (nothing on the left is measured yet)." + note
    )
    return View(figure=fig, text=text, data={"measuring": True}, png=canvas.png(picture))


class _LiveExplorer(Explorer):
    """An :class:`Explorer` whose new settings are measured in one background thread.

    Every paint holds one lock (the picture is shared), and a finished step repaints only if its
    setting is still the one shown. ``background=False`` measures in the caller, as
    :func:`render_probe` does; :meth:`wait` blocks until no step is pending.
    """

    def __init__(self, controls, *, background: bool = True, **kwargs) -> None:
        self.canvas = Canvas()
        self.background = background
        self._lock = threading.RLock()
        self._runs: dict[tuple, dict] = {}
        self._wanted: tuple | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._running = False
        self._first = True
        super().__init__(self._render, controls, **kwargs)

    def _render(self, **values) -> View:
        key, _ = _setting(**values)
        result = self._runs.get(key)
        if result is None and (self._first or not self.background):
            result = self._runs[key] = _measure(*key)  # the first picture is a measured one
        self._first = False
        if result is not None and "error" in result:
            return View(text=f"The Trainer step for this setting could not run: {result['error']}")
        if result is not None:
            return render_probe(**values, canvas=self.canvas, result=result)
        self._request(key)
        return render_measuring(**values, canvas=self.canvas)

    def _request(self, key: tuple) -> None:
        with self._lock:  # started by update(), once the placeholder is painted
            self._wanted = key
            self._idle.clear()

    def _work(self) -> None:
        while True:
            with self._lock:
                key = self._wanted
                if key is None or key in self._runs:
                    self._wanted = None
                    self._running = False
                    self._idle.set()
                    return
            try:
                result = _measure(*key)
            except Exception as err:  # shown as the explorer's message, never a traceback
                result = {"error": str(err) or type(err).__name__}
            with self._lock:
                self._runs[key] = result
                if self._wanted == key:
                    self._wanted = None
                try:
                    if _setting(**self.values())[0] == key:
                        self.update()
                except EdgeCase:
                    pass

    def update(self, change: object = None) -> View:
        """Render the current values (under the explorer's lock)."""
        with self._lock:
            view = super().update(change)
            if self._wanted is not None and not self._running:
                self._running = True
                threading.Thread(target=self._work, daemon=True, name="lossviz-probe").start()
            return view

    def render_ahead(self, values: dict) -> None:
        """Draw a neighbouring setting into the canvas without measuring it: its measured
        picture if its step has run, else its placeholder (no Trainer step is started)."""
        with self._lock:
            key, _ = _setting(**values)
            result = self._runs.get(key)
            if result is None:
                render_measuring(**values, canvas=self.canvas)
            elif "error" not in result:
                render_probe(**values, canvas=self.canvas, result=result)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until every requested Trainer step has finished and been painted."""
        return self._idle.wait(timeout)


def probe_explorer(background: bool = True) -> Explorer:
    """Case, lengths, batch and GA controls over :func:`render_probe` (one Trainer step each).

    ``background=True``: a new setting's step runs in a background thread (see the module).
    """
    style = {"description_width": "initial"}
    controls = {
        "case": W.Dropdown(options=list(_CASE_TEXT), value="ga", description="case"),
        "lengths": W.Text(value="3,7,20,5", description="lengths", continuous_update=False),
        "batch": W.IntSlider(1, 1, 4, description="batch", continuous_update=False, style=style),
        "ga": W.IntSlider(4, 1, 4, description="GA", continuous_update=False, style=style),
    }
    return _LiveExplorer(controls, background=background, height="360px", draw_ahead=True)
