"""A real ``flamefit serve`` (uvicorn) on a free local port, in a thread, for the tests."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager


@contextmanager
def running_server(options, start_timeout: float = 60.0):
    """Serve ``create_app(options)`` on 127.0.0.1 at a port the system picks; yields the base
    URL (``http://127.0.0.1:PORT``) once the server answers; stops it afterwards."""
    import uvicorn

    from flamefit.web.app import create_app

    app = create_app(options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
