"""A grpcio server and client for tests/grpc.rs, with raw-bytes messages (no codegen).

    python grpc_peer.py server            prints its port, serves test.Echo until killed
    python grpc_peer.py server-tls C K    the same over TLS with the PEM certificate C and key K
    python grpc_peer.py calls TARGET      every call kind through TARGET; one `key<TAB>value` line each
    python grpc_peer.py unary TARGET T    one unary call with a T-second deadline; `code<TAB>details`
    python grpc_peer.py slow TARGET T     the Slow method with a T-second deadline; `code<TAB>details`
"""

import queue
import sys
import time
from concurrent import futures

import grpc

SERVICE = "test.Echo"


def unary(request, context):
    context.set_trailing_metadata((("x-trailer", "kept"),))
    return b"echo:" + request


def fail(request, context):
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you: \u00e9 100%")


def server_stream(request, context):
    for i in range(int(request)):
        yield b"item-%d" % i


def client_stream(requests, context):
    return b"+".join(requests)


def bidi(requests, context):
    for message in requests:
        yield message.upper()


def slow(request, context):
    time.sleep(3)
    return request


def serve(tls=None):
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if tls is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        cert, key = (open(path, "rb").read() for path in tls)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def channel(target):
    # No proxy from the environment: the call goes to TARGET itself.
    return grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])


def out(key, value):
    print(f"{key}\t{value}", flush=True)


def calls(target):
    ch = channel(target)
    method = lambda kind, name: getattr(ch, kind)(f"/{SERVICE}/{name}")

    response, call = method("unary_unary", "Unary").with_call(b"hello", timeout=10)
    out("unary", response.decode())
    out("unary_trailer", dict(call.trailing_metadata()).get("x-trailer"))
    out("unary_code", call.code().name)

    try:
        method("unary_unary", "Fail")(b"x", timeout=10)
        out("fail", "OK")
    except grpc.RpcError as error:
        out("fail", f"{error.code().name}|{error.details()}")

    items = [m.decode() for m in method("unary_stream", "ServerStream")(b"5", timeout=10)]
    out("server_stream", ",".join(items))

    joined = method("stream_unary", "ClientStream")(iter([b"a", b"b", b"c"]), timeout=10)
    out("client_stream", joined.decode())

    # Ping-pong: each message is sent only after the answer to the one before arrived, so a
    # proxy that buffered either direction would stall the call until its deadline.
    outgoing = queue.Queue()

    def requests():
        while True:
            message = outgoing.get()
            if message is None:
                return
            yield message

    outgoing.put(b"ping-0")
    answers = []
    responses = method("stream_stream", "Bidi")(requests(), timeout=10)
    for answer in responses:
        answers.append(answer.decode())
        if len(answers) == 3:
            outgoing.put(None)
        else:
            outgoing.put(b"ping-%d" % len(answers))
    out("bidi", ",".join(answers))
    ch.close()


def one(target, name, timeout):
    ch = channel(target)
    started = time.monotonic()
    try:
        ch.unary_unary(f"/{SERVICE}/{name}")(b"x", timeout=timeout)
        out("OK", "")
    except grpc.RpcError as error:
        out(error.code().name, error.details())
    out("took", f"{time.monotonic() - started:.3f}")
    ch.close()


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["server"]:
            serve()
        case ["server-tls", cert, key]:
            serve((cert, key))
        case ["calls", target]:
            calls(target)
        case ["unary", target, timeout]:
            one(target, "Unary", float(timeout))
        case ["slow", target, timeout]:
            one(target, "Slow", float(timeout))
        case _:
            sys.exit(__doc__)
