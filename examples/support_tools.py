"""Tools the support agent (examples/support_agent.yaml) may call.

The model sees each function's name, its first docstring paragraph and a JSON
Schema built from its type hints.
"""

from __future__ import annotations

from typing import Any

ORDERS: dict[int, dict[str, Any]] = {
    1042: {"order": 1042, "item": "teapot", "paid": 39.90, "status": "delivered"},
    1043: {"order": 1043, "item": "kettle", "paid": 54.00, "status": "in transit"},
}


def lookup_order(order: int) -> dict[str, Any]:
    """Find an order by its number: what was bought, what was paid, where it is."""
    found = ORDERS.get(order)
    if found is None:
        raise LookupError(f"no order {order}")
    return found


def refund(order: int, amount: float) -> dict[str, Any]:
    """Refund part or all of an order's price to the customer."""
    paid = lookup_order(order)["paid"]
    if not 0 < amount <= paid:
        raise ValueError(f"a refund must be between 0 and {paid}, got {amount}")
    return {"order": order, "refunded": amount}
