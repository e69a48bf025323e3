"""Functions that examples/python_task.yaml calls from its `python` task.

The runtime imports ``pricing`` from a directory listed in
``Settings.python_paths`` (``PAUSEPOINT_PYTHON_PATHS='["examples"]'``).
"""

from __future__ import annotations

from typing import Any


def quote(items: list[dict[str, Any]], discount: float = 0.0) -> dict[str, Any]:
    """Price a basket: ``items`` of ``{"sku", "unit_price", "quantity"}``, ``discount`` in [0, 1].

    Returns the outputs of the task: the line totals, the subtotal, the
    discount taken and the total, rounded to cents.
    """
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must be between 0 and 1, got {discount}")
    lines = [
        {"sku": item["sku"], "total": round(item["unit_price"] * item["quantity"], 2)}
        for item in items
    ]
    subtotal = round(sum(line["total"] for line in lines), 2)
    saved = round(subtotal * discount, 2)
    return {
        "lines": lines,
        "subtotal": subtotal,
        "discount": saved,
        "total": round(subtotal - saved, 2),
    }
