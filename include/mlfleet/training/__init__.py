"""Training: the model zoo, cross-validation and the container entrypoint (no Airflow imports)."""
