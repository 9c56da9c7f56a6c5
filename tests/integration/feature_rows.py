"""Feature values for hand-written offline tables: distinct for every (customer, day), so a test
can tell exactly which day's row a store returned. Shared by the online- and offline-store tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def spend_values(c: int, k: int) -> dict[str, Any]:
    """customer_spend of customer c on day k."""
    return {"spend_7d": 10.0 * c + k + 0.25, "spend_28d": 100.0 * c + k + 0.5, "orders_7d": c + k,
            "orders_28d": 10 * c + k, "avg_amount_28d": c + k / 10}


def channel_values(c: int, k: int) -> dict[str, Any]:
    """customer_channels of customer c on day k."""
    return {"app_share_28d": (c + k) / 20, "store_share_28d": (c * k) / 40, "categories_28d": c + 2 * k,
            "days_since_last_order": 3 * c + k}


# view -> (its values, their Arrow types), in the schema feature_repo/ declares
VIEWS = {
    "customer_spend": (spend_values, {"spend_7d": pa.float64(), "spend_28d": pa.float64(), "orders_7d": pa.int64(),
                                      "orders_28d": pa.int64(), "avg_amount_28d": pa.float64()}),
    "customer_channels": (channel_values, {"app_share_28d": pa.float64(), "store_share_28d": pa.float64(),
                                           "categories_28d": pa.int64(), "days_since_last_order": pa.int64()}),
}
