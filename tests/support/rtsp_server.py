#!/usr/bin/python3
"""Serve a video file as a live RTSP camera on loopback (test helper, GStreamer RTSP server).

Run with Debian's /usr/bin/python3 (python3-gi + gir1.2-gst-rtsp-server-1.0), not the project venv:

    /usr/bin/python3 tests/support/rtsp_server.py FILE --port 8554 --mount /bed1 [--auth USER:PASSWORD]

The file is decoded, re-encoded to H.264 (zero-latency) and looped, like a real IP camera. Prints
``READY rtsp://127.0.0.1:PORT/MOUNT`` on stdout once listening; exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _require_login(server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory,
                   user: str, password: str) -> None:
    """Only USER:PASSWORD (RTSP basic auth) may open the stream; anyone else gets 401."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camera-user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("camera-user", "media.factory.access", True)
    perms.add_permission_for_role("camera-user", "media.factory.construct", True)
    factory.set_permissions(perms)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--mount", default="/bed1")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--auth", metavar="USER:PASSWORD", help="require RTSP basic authentication (a camera with a login)")
    args = ap.parse_args()
    if not args.file.is_file():
        print(f"video file not found: {args.file}", file=sys.stderr)
        return 2
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # multifilesrc loops the file forever; one shared pipeline for all clients.
    location = str(args.file.resolve()).replace('"', '\\"')
    factory.set_launch(f'( multifilesrc location="{location}" loop=true ! decodebin ! videoconvert ! identity sync=true ! '
                       "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(True)
    if args.auth:
        _require_login(server, factory, *args.auth.split(":", 1))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"could not listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.host}:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
