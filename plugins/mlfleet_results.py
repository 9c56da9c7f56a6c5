"""mlfleet's results in the Airflow UI: an "Experiments" nav entry and a "Results" tab on DAG runs.

Thin on purpose: the app and its views live in include/mlfleet/ui, the Airflow wiring in
mlfleet.airflow.results_ui. Nothing heavy is imported here (every Airflow process imports plugins).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlfleet.airflow.results_ui import EXTERNAL_VIEWS, URL_PREFIX, LazyResultsApp


class MlfleetResultsPlugin(AirflowPlugin):
    name = "mlfleet_results"
    fastapi_apps = [{"app": LazyResultsApp(), "url_prefix": URL_PREFIX, "name": "mlfleet results"}]
    external_views = EXTERNAL_VIEWS
