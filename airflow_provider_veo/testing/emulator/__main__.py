"""``python -m airflow_provider_veo.testing.emulator``: serve the emulator from a shell until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from airflow_provider_veo.testing.emulator.scenario import Scenario
from airflow_provider_veo.testing.emulator.server import PROFILES, VeoEmulator


def main(argv: list[str] | None = None) -> None:
    """Run the emulator until Ctrl-C, printing the Airflow connection that points at it."""
    parser = argparse.ArgumentParser(description="A local stand-in for CometAPI's /v1/videos API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--server", choices=sorted(PROFILES), default="docs", help="the profile to answer as")
    parser.add_argument("--id-style", choices=("colon", "task"), default=None, help="default: the profile's")
    parser.add_argument("--polls", type=int, default=Scenario.polls_until_done, help="polls until done")
    parser.add_argument("--seconds-until-done", type=float, default=None, help="finish on the clock instead")
    args = parser.parse_args(argv)
    scenario = Scenario(polls_until_done=args.polls, seconds_until_done=args.seconds_until_done)
    emulator = VeoEmulator(
        args.api_key,
        scenario=scenario,
        id_style=args.id_style,
        host=args.host,
        port=args.port,
        cdn_port=args.cdn_port,
        server=args.server,
    )
    with emulator:
        print(f"Veo emulator: API {emulator.url}, CDN {emulator.cdn_url} ({args.server} profile)", flush=True)
        print(f"export AIRFLOW_CONN_VEO_DEFAULT='{emulator.connection_json()}'", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("Stopping.", flush=True)


if __name__ == "__main__":
    main()
