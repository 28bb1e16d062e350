"""Python peers of broker-core's tests/peers.rs and tests/amqp.rs: nats-py, redis-py and
pika on our wire format.

A message is its payload plus headers; broker-core's own are `bk-id` (a UUID),
`bk-attempt` (deliveries so far, 0 when published) and `bk-published-at` (Unix ms).
On NATS and RabbitMQ they are native headers (AMQP: the `headers` table); on Redis
Streams an entry has the field `h` (the header block, `name: value` CRLF lines) and the
field `p` (the payload). A message broker-core publishes to a NATS queue stream carries
only its user headers and the id as `Nats-Msg-Id`: a consumer takes the attempt from the
delivery count (`num_delivered - 1` before this delivery) and the publication time from
the time the stream stored it, both in the delivery's metadata (`nats_consume` below).

Usage (one JSON object per message on stdout):
  broker_peer.py nats-publish URL SUBJECT N
  broker_peer.py nats-consume URL STREAM N
  broker_peer.py nats-respond URL STREAM
  broker_peer.py redis-xadd URL STREAM_KEY N
  broker_peer.py redis-read URL STREAM_KEY N
  broker_peer.py amqp-publish URL EXCHANGE ROUTING_KEY N
  broker_peer.py amqp-consume URL QUEUE N
  broker_peer.py amqp-respond URL QUEUE
  broker_peer.py mqtt-publish URL TOPIC N
  broker_peer.py mqtt-consume URL TOPIC_FILTER N

On MQTT (paho-mqtt, MQTT 5) a device-like publisher sends no `bk-` headers: user
properties, the content type and the correlation data are the headers. `mqtt-consume`
prints `{"ready": true}` once its subscription is acknowledged, then one line per message.
"""

import asyncio
import json
import sys
import time
import uuid


def our_headers(i):
    return {
        "bk-id": str(uuid.uuid4()),
        "bk-attempt": "0",
        "bk-published-at": str(int(time.time() * 1000)),
        "correlation-id": f"py-{i}",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x-peer": "python",
    }


def parse_block(block):
    headers = {}
    for line in block.split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            headers[name] = value
    return headers


async def nats_publish(url, subject, n, plain=False):
    """Publishes n messages with our `bk-` headers, or (plain) as our own publisher
    sends to a queue: user headers and the id once, as `Nats-Msg-Id`."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(n):
        headers = our_headers(i)
        if plain:
            message_id = headers.pop("bk-id")
            del headers["bk-attempt"]
            del headers["bk-published-at"]
            headers["Nats-Msg-Id"] = message_id
        else:
            message_id = headers["bk-id"]
        ack = await js.publish(subject, f"from nats-py {i}".encode(), headers=headers)
        print(json.dumps({"id": message_id, "seq": ack.seq}), flush=True)
    await nc.close()


async def nats_pull(url, stream, n):
    """Pulls n messages from our durable consumer `bk` of `stream`."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind("bk", stream)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.extend(await sub.fetch(n - len(got), timeout=1))
        except nats.errors.TimeoutError:
            pass
    return nc, got


async def nats_consume(url, stream, n):
    nc, got = await nats_pull(url, stream, n)
    for msg in got:
        raw = msg.headers or {}
        headers = {k: v for k, v in raw.items() if not k.lower().startswith("nats-")}
        meta = msg.metadata
        headers.setdefault("bk-id", raw.get("Nats-Msg-Id"))
        headers.setdefault("bk-attempt", str(meta.num_delivered - 1))
        headers.setdefault("bk-published-at", str(int(meta.timestamp.timestamp() * 1000)))
        print(json.dumps({"headers": headers, "payload": msg.data.decode()}), flush=True)
        await msg.ack()
    await nc.flush()
    await nc.close()


async def nats_respond(url, stream):
    """Answers one request: publishes to its reply-to with its correlation-id."""
    nc, got = await nats_pull(url, stream, 1)
    for msg in got:
        headers = msg.headers or {}
        reply = our_headers(0)
        reply["correlation-id"] = headers.get("correlation-id", "")
        await nc.publish(headers["reply-to"], b"answer from nats-py: " + msg.data, headers=reply)
        await msg.ack()
        print(json.dumps({"answered": headers.get("correlation-id")}), flush=True)
    await nc.flush()
    await nc.close()


def redis_xadd(url, key, n):
    import redis

    r = redis.Redis.from_url(url)
    for i in range(n):
        headers = our_headers(i)
        block = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        entry = r.xadd(key, {"h": block.encode(), "p": f"from redis-py {i}".encode()})
        print(json.dumps({"id": headers["bk-id"], "entry": entry.decode()}), flush=True)


def redis_read(url, key, n):
    """Reads n entries as a consumer of our group `bk`, acks and deletes them as we do."""
    import redis

    r = redis.Redis.from_url(url)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        reply = r.xreadgroup("bk", "redis-py", {key: ">"}, count=n - len(got), block=200)
        for _stream, entries in reply or []:
            got.extend(entries)
    for entry_id, fields in got:
        headers = parse_block(fields[b"h"].decode())
        print(json.dumps({"headers": headers, "payload": fields[b"p"].decode()}), flush=True)
        r.xack(key, "bk", entry_id)
        r.xdel(key, entry_id)


def amqp_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def amqp_publish(url, exchange, routing_key, n):
    """Publishes n messages with our headers, mandatory and with publisher confirms."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(n):
        headers = our_headers(i)
        props = pika.BasicProperties(
            headers=headers,
            delivery_mode=2,
            message_id=headers["bk-id"],
            correlation_id=headers["correlation-id"],
        )
        # Raises UnroutableError / NackError unless the broker stored it.
        ch.basic_publish(exchange, routing_key, f"from pika {i}".encode(), props, mandatory=True)
        print(json.dumps({"id": headers["bk-id"]}), flush=True)
    conn.close()


def amqp_get(ch, queue, n):
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue)
        if method is None:
            time.sleep(0.05)
            continue
        got.append((method, props, body))
    return got


def amqp_consume(url, queue, n):
    """Takes n messages from our queue and acks them."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for method, props, body in amqp_get(ch, queue, n):
        headers = {k: amqp_text(v) for k, v in (props.headers or {}).items()}
        print(json.dumps({"headers": headers, "payload": body.decode()}), flush=True)
        ch.basic_ack(method.delivery_tag)
    conn.close()


def amqp_respond(url, queue):
    """Answers one request: publishes to its reply-to queue with its correlation-id."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    for method, props, body in amqp_get(ch, queue, 1):
        headers = {k: amqp_text(v) for k, v in (props.headers or {}).items()}
        reply = our_headers(0)
        reply["correlation-id"] = headers.get("correlation-id", "")
        ch.basic_publish(
            "", headers["reply-to"], b"answer from pika: " + body, pika.BasicProperties(headers=reply)
        )
        ch.basic_ack(method.delivery_tag)
        print(json.dumps({"answered": headers.get("correlation-id")}), flush=True)
    conn.close()


def mqtt_client(url):
    import paho.mqtt.client as mqtt

    rest = url.split("://", 1)[1].rstrip("/")
    host, _, port = rest.rpartition(":")
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    client.connect(host or rest, int(port) if host else 1883)
    client.loop_start()
    return client


def mqtt_publish(url, topic, n):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt_client(url)
    for i in range(n):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("x-peer", "paho"), ("x-index", str(i)), ("traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
        props.ContentType = "text/plain"
        props.CorrelationData = f"paho-{i}".encode()
        info = client.publish(topic, f"from paho {i}".encode(), qos=1, properties=props)
        info.wait_for_publish(timeout=10)
        print(json.dumps({"index": i, "published": info.is_published()}), flush=True)
    client.loop_stop()
    client.disconnect()


def mqtt_consume(url, topic_filter, n):
    import queue

    got = queue.Queue()
    subscribed = queue.Queue()
    client = mqtt_client(url)
    client.on_message = lambda c, u, msg: got.put(msg)
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(codes)
    client.subscribe(topic_filter, qos=1)
    subscribed.get(timeout=10)
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + 15
    seen = 0
    while seen < n and time.monotonic() < deadline:
        try:
            msg = got.get(timeout=0.5)
        except queue.Empty:
            continue
        props = msg.properties
        headers = dict(getattr(props, "UserProperty", []) or [])
        if getattr(props, "ContentType", None):
            headers["content-type"] = props.ContentType
        if getattr(props, "CorrelationData", None):
            headers["correlation-id"] = props.CorrelationData.decode()
        print(json.dumps({"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain),
                          "payload": msg.payload.decode(), "headers": headers}), flush=True)
        seen += 1
    client.loop_stop()
    client.disconnect()


def main():
    command, url, *rest = sys.argv[1:]
    if command == "nats-publish":
        asyncio.run(nats_publish(url, rest[0], int(rest[1])))
    elif command == "nats-publish-plain":
        asyncio.run(nats_publish(url, rest[0], int(rest[1]), plain=True))
    elif command == "nats-consume":
        asyncio.run(nats_consume(url, rest[0], int(rest[1])))
    elif command == "nats-respond":
        asyncio.run(nats_respond(url, rest[0]))
    elif command == "redis-xadd":
        redis_xadd(url, rest[0], int(rest[1]))
    elif command == "redis-read":
        redis_read(url, rest[0], int(rest[1]))
    elif command == "amqp-publish":
        amqp_publish(url, rest[0], rest[1], int(rest[2]))
    elif command == "amqp-consume":
        amqp_consume(url, rest[0], int(rest[1]))
    elif command == "amqp-respond":
        amqp_respond(url, rest[0])
    elif command == "mqtt-publish":
        mqtt_publish(url, rest[0], int(rest[1]))
    elif command == "mqtt-consume":
        mqtt_consume(url, rest[0], int(rest[1]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
