"""The number a reader should cite from a run, and which pair set it is about.

A verification block (report.json ``verification.overall`` or any breakdown set) can hold
three accuracies: the k-fold cross-validated one (each fold's threshold chosen on the other
folds), the val-chosen threshold applied to the test pairs (``val_threshold``), and the best
threshold on the test pairs themselves, which is optimistic. :func:`honest_accuracy` picks the
one that is not tuned on the pairs it scores, and says how it was obtained; only when a
protocol has neither folds nor val pairs is the optimistic one all there is, and it is labelled.

:func:`primary_pair_set` names the pair set a protocol is about (masked against unmasked before
masked-masked; the unmasked-unmasked control is never the headline while a masked type exists),
so every table leads with it and shows the control on its own row, never a pooled ``all``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Pair types in headline order: what a masked-face protocol is about comes first.
HEADLINE_ORDER = ("masked-unmasked", "masked-masked", "listed", "unmasked-unmasked")
CONTROL = "unmasked-unmasked"
FOLDS, VAL, OPTIMISTIC = "folds", "val", "optimistic"


def primary_pair_set(pair_types: Iterable[str]) -> str:
    """The pair type a report leads with: the first of :data:`HEADLINE_ORDER` present (another
    type sorts after them); ``all`` when there is none."""
    present = sorted(set(pair_types), key=_rank)
    return present[0] if present else "all"


def ordered_pair_types(pair_types: Iterable[str]) -> list[str]:
    """The pair types in headline order: primary first, the control last."""
    return sorted(set(pair_types), key=_rank)


def _rank(t: str) -> tuple[int, str]:
    return (HEADLINE_ORDER.index(t) if t in HEADLINE_ORDER else len(HEADLINE_ORDER) - 1, t)


def set_label(name: str, primary: str) -> str:
    """A row label: the control says it is one when a masked type leads."""
    return f"{name} (control)" if name == CONTROL and primary != CONTROL else name


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> list[float] | None:
    """95% Wilson score interval of a proportion k/n (a fixed threshold's accuracy)."""
    if n <= 0:
        return None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, centre - half), min(1.0, centre + half)]


def honest_accuracy(v: Mapping[str, Any]) -> dict[str, Any] | None:
    """The citable accuracy of one verification block, or None when it has none.

    Returns ``{"value", "how" (folds | val | optimistic), "text", "sem" (folds), "ci95",
    "threshold" (val), "optimistic" (the best-on-test value, when a better figure exists)}``.
    """
    acc = v.get("accuracy") or {}
    if acc.get("value") is None:
        return None
    if not acc.get("optimistic"):
        n = acc.get("n_folds")
        return {
            "value": acc["value"],
            "how": FOLDS,
            "sem": acc.get("sem"),
            "ci95": acc.get("ci95"),
            "text": f"{n}-fold cross-validation (each fold's threshold chosen on the other "
            "folds); ± is the standard error over folds",
        }
    vt = v.get("val_threshold")
    if vt and vt.get("accuracy") is not None:
        return {
            "value": vt["accuracy"],
            "how": VAL,
            "threshold": vt["threshold"],
            "ci95": vt.get("ci95"),
            "optimistic": acc["value"],
            "text": f"threshold {vt['threshold']:.4f} chosen on the {vt.get('n_val', '?')} val "
            f"pairs, applied to the {vt.get('n_test', '?')} test pairs; 95% Wilson interval",
        }
    return {
        "value": acc["value"],
        "how": OPTIMISTIC,
        "text": "optimistic: the best threshold on the scored pairs themselves (this protocol "
        "has neither folds nor val pairs to choose it on)",
    }


#: Short labels of how an accuracy was obtained, for cells and column headers.
HOW_LABEL = {FOLDS: "k-fold", VAL: "val thr.", OPTIMISTIC: "opt."}


def accuracy_text(v: Mapping[str, Any], with_ci: bool = False, label: bool = True) -> str:
    """A table cell: the honest accuracy with its label (``± s.e.``, ``val thr.``, ``opt.``);
    ``label=False`` leaves the label to the column header (``± s.e.`` stays)."""
    h = honest_accuracy(v)
    if h is None:
        return "–"
    text = f"{100.0 * h['value']:.2f}%"
    if h["how"] == FOLDS and h.get("sem") is not None:
        text += f" ± {100.0 * h['sem']:.2f}"
    elif label and h["how"] in (VAL, OPTIMISTIC):
        text += f" ({HOW_LABEL[h['how']]})"
    ci = h.get("ci95")
    if with_ci and ci:
        text += f" [{100.0 * ci[0]:.2f}, {100.0 * ci[1]:.2f}]"
    return text


def accuracy_header(ver: Mapping[str, Any]) -> str:
    """``accuracy (val thr.)`` etc.: a column header naming how the headline set's accuracy was
    obtained (sets of one report are all obtained the same way)."""
    acc = headline(ver)["accuracy"]
    return "accuracy" if acc is None else f"accuracy ({HOW_LABEL[acc['how']]})"


def headline(ver: Mapping[str, Any]) -> dict[str, Any]:
    """The report's headline: the primary pair set's honest accuracy, and the control's.

    ``{"pair_set", "accuracy" (honest_accuracy or None), "control": {"pair_set",
    "accuracy"} or None}``; a protocol of one pair type leads with it.
    """
    by_type = ver.get("by_pair_type") or {}
    primary = primary_pair_set(by_type)
    block = by_type.get(primary) or ver["overall"]
    out: dict[str, Any] = {"pair_set": primary, "accuracy": honest_accuracy(block)}
    control = by_type.get(CONTROL) if primary != CONTROL else None
    out["control"] = (
        {"pair_set": CONTROL, "accuracy": honest_accuracy(control)} if control else None
    )
    return out


def headline_sentence(ver: Mapping[str, Any]) -> str:
    """One line for report.md and the terminal: what to cite, how it was obtained."""
    h = headline(ver)
    by_type = ver.get("by_pair_type") or {}
    block = by_type.get(h["pair_set"]) or ver["overall"]
    acc, name = h["accuracy"], h["pair_set"]
    if acc is None:
        return f"Headline ({name} pairs): no accuracy ({block.get('error', 'no pairs')})."
    text = f"Headline: {name} accuracy {accuracy_text(block, with_ci=True)} ({acc['text']})"
    if acc.get("optimistic") is not None:
        best = 100 * acc["optimistic"]
        text += f"; the optimistic best threshold on the test pairs gives {best:.2f}%"
    ctrl = h["control"]
    if ctrl and ctrl["accuracy"]:
        text += f". Control ({CONTROL}): {accuracy_text(by_type[CONTROL])}"
    return text + "."
