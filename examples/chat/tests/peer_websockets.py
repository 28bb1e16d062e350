"""Python `websockets` as a client of the chat server (run by tests/peers.rs).

Usage: python peer_websockets.py http://127.0.0.1:PORT
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def extension_names(ws):
    return [ext.name for ext in ws.protocol.extensions]


async def main(base):
    ws_base = base.replace("http://", "ws://")
    # Echo endpoint: subprotocol and permessage-deflate negotiated, echo of text and binary.
    async with connect(ws_base + "/echo", subprotocols=["other", "echo.v1"],
                       compression="deflate", max_size=None) as ws:
        assert ws.subprotocol == "echo.v1", ws.subprotocol
        assert "permessage-deflate" in extension_names(ws), extension_names(ws)
        for message in ["hello", "é" * 5000, b"\x00\x01\x02" * 1000, ""]:
            await ws.send(message)
            echoed = await ws.recv()
            assert echoed == message, (len(echoed), len(message))
        await ws.close(4000, "bye")
    assert ws.protocol.close_rcvd.code == 4000, ws.protocol.close_rcvd
    print("echo ok")

    # Chat endpoint: a message over the limit is refused with 1009.
    async with connect(ws_base + "/ws?name=py", origin=base, subprotocols=["chat.v1"],
                       compression="deflate", max_size=None) as ws:
        assert ws.subprotocol == "chat.v1"
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["name"] == "py", welcome
        await ws.send(json.dumps({"type": "join", "room": "py"}))
        presence = json.loads(await ws.recv())
        assert presence["type"] == "presence" and presence["joined"], presence
        await ws.send(json.dumps({"type": "say", "room": "py", "text": "hi"}))
        said = json.loads(await ws.recv())
        assert said["text"] == "hi" and said["name"] == "py", said
        await ws.send("x" * 70000)
        try:
            await ws.recv()
            raise AssertionError("expected the server to close")
        except ConnectionClosed:
            pass
        assert ws.protocol.close_rcvd.code == 1009, ws.protocol.close_rcvd
    print("limits ok")

    # A foreign origin is refused during the handshake.
    try:
        async with connect(ws_base + "/ws", origin="https://evil.example"):
            raise AssertionError("expected 403")
    except Exception as error:  # websockets raises InvalidStatus
        assert "403" in str(error), error
    print("origin ok")


asyncio.run(main(sys.argv[1]))
print("python websockets peer: all checks passed")
