"""The asset that links the pipelines: feature_pipeline updates it, drift_monitor runs on it."""

from airflow.sdk import Asset

FEATURES_ASSET = Asset("mlfleet_features")
