"""The "Videos" view: an Airflow plugin that shows a DAG run's stored videos in Airflow's own UI.

:mod:`.plugin` registers it (the ``airflow.plugins`` entry point), :mod:`.app` holds the FastAPI
routes and their authorisation, :mod:`.recorded` finds what a run's tasks recorded, :mod:`.media`
reads the files back (local or object store, with ranges) and :mod:`.page` renders the HTML.
"""
