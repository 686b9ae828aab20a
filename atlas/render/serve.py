"""The preview server behind `atlas serve DIR` (atlas/cli/serve.py): HTTP on 127.0.0.1 only.

DIR is a run folder (its `site/` is served) or a site folder itself. The site needs no
server (it works from file://); this is for checking it the way a static host serves it.
"""
from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def site_root(path: str | Path) -> Path:
    """The folder holding index.html: DIR/site for a run folder, else DIR itself."""
    p = Path(path)
    for candidate in (p / "site", p):
        if (candidate / "index.html").is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"no site in {p}: neither {p / 'site' / 'index.html'} nor {p / 'index.html'} exists; "
                            "run `atlas render RUN_DIR` first")


class _Handler(SimpleHTTPRequestHandler):
    quiet = False

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if not self.quiet:
            super().log_message(format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # a preview: always show the latest render
        super().end_headers()


def make_server(directory: str | Path, port: int = 8000, quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server bound to 127.0.0.1 serving `directory` (not yet started)."""
    handler = functools.partial(type("Handler", (_Handler,), {"quiet": quiet}), directory=str(directory))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ValueError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another --port") from exc
