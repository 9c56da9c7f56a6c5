"""The feature job's per-day statistics (Spark) are the drift check's sketches (numpy), bucket for bucket."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from mlfleet.drift import sketch
from mlfleet.etl.feature_job import feature_statistics

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[1]").appName("mlfleet-test-statistics")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()


def test_spark_statistics_equal_the_numpy_sketch_per_day(spark) -> None:
    rng = np.random.default_rng(0)
    days = [date(2026, 9, 1), date(2026, 9, 2)]
    edge = [0.0, -0.0, 1e-12, -3.5, 1.0, 1 / 3, 0.5, 2.0, 1e6, float("nan"), float("inf"), None]
    spend = {d: [float(v) for v in rng.gamma(2, 40, 300)] + edge for d in days}
    orders = {d: [float(v) for v in rng.poisson(3, 300)] + [None] * len(edge) for d in days}
    rows = [(d, s, None if o is None else int(o)) for d in days for s, o in zip(spend[d], orders[d])]
    table = spark.createDataFrame(rows, "feature_date date, spend double, orders bigint")

    stats = feature_statistics(table, ["spend", "orders"]).toPandas()
    assert list(stats.columns) == ["feature_date", *sketch.COLUMNS]
    for day in days:
        got = sketch.from_table(stats[stats["feature_date"] == day])
        for feature, values in (("spend", spend[day]), ("orders", orders[day])):
            expected = sketch.from_values(np.array([np.nan if v is None else v for v in values], dtype=float))
            for field in ("bucket", "count", "low", "high"):
                np.testing.assert_array_equal(getattr(got[feature], field), getattr(expected, field), err_msg=field)
    # the days merge into the sketch of both days' values
    both = sketch.from_table(stats)["spend"]
    expected = sketch.from_values(np.array([np.nan if v is None else v for d in days for v in spend[d]], dtype=float))
    np.testing.assert_array_equal(both.count, expected.count)
