"""The example DAGs parse cleanly, as the DAG processor would load them."""

from __future__ import annotations

from .conftest import EXAMPLE_DAGS


def test_example_dags_load_without_import_errors() -> None:
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))  # example DAGs of Airflow are off for the session
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "veo_text_to_video",
        "veo_image_to_video",
        "veo_generate_mapped",
        "veo_render_for_publishing",
        "veo_publish_video",
    }
    for dag_id in bag.dag_ids:
        assert "veo" in bag.dags[dag_id].tags
