"""The Airflow layer: the only part of mlfleet (with backends/' operators) that imports Airflow.

Task callables, the sweep's round wiring, the asset that links the DAGs, shared DAG defaults and
trigger-form params. Each task unpacks Airflow's context and calls an Airflow-free step.
"""
