"""Tests against a real multi-process Airflow deployment (api-server, scheduler, dag-processor, triggerer)."""
