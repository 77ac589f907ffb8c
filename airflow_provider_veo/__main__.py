"""``python -m airflow_provider_veo``: the on-call commands of :mod:`airflow_provider_veo.cli`."""

from __future__ import annotations

import sys

from airflow_provider_veo.cli import main

if __name__ == "__main__":
    sys.exit(main())
