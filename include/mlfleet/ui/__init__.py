"""mlfleet's results in the Airflow UI: experiments, leaderboards, plots, drift and champion history.

`app.create_app` builds the FastAPI app (pages over `views`); `mlfleet.airflow.results_ui` gives it
Airflow's auth manager and `plugins/mlfleet_results.py` mounts it. Nothing heavy at import time:
the plugin module is imported by every Airflow process, the app only by the api-server.
"""
