"""The local Airflow that `mlfleet up` runs, and the REST client the CLI, the demo and tests use.

Nothing here imports Airflow: Airflow reads its configuration from the process environment at
import time, and these modules run in the CLI and test processes, whose environment is not ours.
"""
