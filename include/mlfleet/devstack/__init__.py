"""The local Airflow that `mlfleet up` runs, and the REST client the CLI, the demo and tests use.

``stack`` is the entry point (``up``, ``down``, ``status``, ``migrate``, ``airflow_env``,
``admin_password``); ``environment``, ``processes``, ``health``, ``ports`` and ``polling`` are
its parts, ``rest_client`` talks to the running deployment.

Nothing here imports Airflow: Airflow reads its configuration from the process environment at
import time, and these modules run in the CLI and test processes, whose environment is not ours.
"""
