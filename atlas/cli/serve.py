"""`atlas serve DIR`: preview a built site over HTTP on this machine only (127.0.0.1)."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="preview a built site at http://127.0.0.1:PORT/",
                       description="Serve a run's site/ folder (or a site folder) over HTTP on 127.0.0.1 only, "
                                   "for a local preview. The site itself needs no server.")
    p.add_argument("dir", metavar="DIR", help="a run folder or a site folder")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--quiet", action="store_true", help="do not log each request")


def run(args: argparse.Namespace) -> int:
    from atlas.render.serve import make_server, site_root
    root = site_root(args.dir)
    server = make_server(root, args.port, quiet=args.quiet)
    host, port = server.server_address[:2]
    print(f"serving {root} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
