"""The tapguard local AWS emulator: moto's server plus the operations and test controls this project needs.

    .venv/bin/python emulator/server.py [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof] [--verbose]

Prints one line `tapguard-emulator listening on http://HOST:PORT` once it answers, then serves until
stopped (Ctrl-C), or until its standard input closes with --exit-on-stdin-eof, so a test process that
dies never leaves an emulator behind. Port 0 picks a free port.
"""

import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the ext_*.py modules

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from faults import FaultMiddleware, Faults  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def account_of(access_key: str) -> str:
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def install_extensions() -> None:
    """Every `ext_*.py` beside this file adds operations or test controls to moto through its `install()`."""
    import importlib

    for name in sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("ext_") and f.endswith(".py")):
        importlib.import_module(name).install()


def build_app():
    install_extensions()
    return FaultMiddleware(DomainDispatcherApplication(create_backend_app), Faults(), account_of)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    handler = WSGIRequestHandler if args.verbose else QuietHandler
    server = make_server(args.host, args.port, build_app(), threaded=True, request_handler=handler)
    host, port = server.server_address[:2]
    # Where the functions that ext_custom_resources.py runs reach the emulator (their AWS endpoint).
    os.environ["TAPGUARD_EMULATOR_SELF_URL"] = f"http://{host}:{port}"
    print(f"tapguard-emulator listening on http://{host}:{port}", flush=True)

    if args.exit_on_stdin_eof:
        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
