"""Python `websockets` as a client of the chat server (run by tests/peers.rs).

Usage: python peer_websockets.py http://127.0.0.1:PORT
"""
import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


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

    # What Autobahn's cases 12.x.1 and 13.x.1 check, which kosoku 0.1.0 cannot run: 1000
    # small (16-byte) messages, text and binary, echoed over permessage-deflate, under each
    # kind of offer of the 13.x groups (context takeover and window bits, both directions).
    text = "".join(chr(0x20 + (i * 7919) % 0x2FF) for i in range(4096))
    data = bytes((i * 2654435761 >> 7) & 0xFF for i in range(4096))
    offers = [
        {},
        {"client_no_context_takeover": True},
        {"server_no_context_takeover": True},
        {"client_no_context_takeover": True, "server_no_context_takeover": True},
        {"server_max_window_bits": 9},
        {"client_max_window_bits": 9},
        {"server_max_window_bits": 9, "client_max_window_bits": 9,
         "client_no_context_takeover": True, "server_no_context_takeover": True},
    ]
    for offer in offers:
        factory = ClientPerMessageDeflateFactory(**offer)
        async with connect(ws_base + "/echo", extensions=[factory], compression=None,
                           max_size=None) as ws:
            assert "permessage-deflate" in extension_names(ws), (offer, extension_names(ws))
            for i in range(1000):
                start = (i * 16) % 4080
                for message in (text[start:start + 16], data[start:start + 16]):
                    await ws.send(message)
                    echoed = await ws.recv()
                    assert echoed == message, (offer, i, echoed, message)
            await ws.close()
    print("small compressed messages ok")

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
