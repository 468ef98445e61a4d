"""librdkafka (confluent-kafka-python) producer load for `npm run bench`.

Usage: rdkafka_producer.py BOOTSTRAP TOPIC SECONDS RATE_MIB_S RECORD_BYTES
RATE_MIB_S = 0 means as fast as possible. Prints one JSON line:
{"records": n, "bytes": n, "seconds": s, "latency_ms": {"p50": x, "p99": y, "max": z}}
Latency is librdkafka's own per-message figure: produce() call to delivery report (acks=all).
BENCH_RDKAFKA_CONFIG (a JSON object) adds or overrides producer settings.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer

bootstrap, topic, seconds, rate_mib, record_bytes = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
latencies = []
delivered = [0]
errors = [0]


def on_delivery(err, msg):
    if err is not None:
        errors[0] += 1
        return
    delivered[0] += 1
    latencies.append(msg.latency())


config = {
    'bootstrap.servers': bootstrap,
    'acks': 'all',
    'enable.idempotence': True,
    # Paced (latency) runs linger 1 ms, as latency benchmarks of Kafka do; max-rate runs 5 ms.
    'linger.ms': 1 if rate_mib > 0 else 5,
    'batch.size': 1_000_000,
    'queue.buffering.max.kbytes': 256 * 1024,
    'queue.buffering.max.messages': 1_000_000,
    'compression.type': 'none',
    # librdkafka leaves Nagle on by default; Kafka's Java client turns it off (TCP_NODELAY).
    'socket.nagle.disable': True,
}
config.update(json.loads(os.environ.get('BENCH_RDKAFKA_CONFIG', '{}')))
producer = Producer(config)
payload = bytes((i * 7) % 251 for i in range(record_bytes))
# One record, delivered before the clock starts: the producer then knows the topic's partitions
# and has its producer id. Otherwise, when the first produce() comes after the connection's
# first metadata request, librdkafka asks for the topic only at its next 1 s topic scan and
# holds that second of records back (one partition's worth measured at ~1 s each): a client
# start-up cost, not a produce latency.
producer.produce(topic, payload)
producer.flush(30)
start = time.monotonic()
deadline = start + seconds
sent = 0
records_per_s = rate_mib * 1024 * 1024 / record_bytes if rate_mib > 0 else 0
while True:
    now = time.monotonic()
    if now >= deadline:
        break
    if records_per_s:
        due = int((now - start) * records_per_s)
        burst = min(due - sent, 5000)
        if burst <= 0:
            # librdkafka takes whole milliseconds: poll(0.0005) is poll(0), and the loop spun a
            # whole core, which on a 2-core machine it took from the broker under test.
            producer.poll(0.001)
            continue
    else:
        burst = 2000
    for _ in range(burst):
        try:
            producer.produce(topic, payload, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.001)
            break
    producer.poll(0)
producer.flush(60)
elapsed = time.monotonic() - start
latencies.sort()


def pct(p):
    if not latencies:
        return None
    return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)


print(json.dumps({
    'records': delivered[0],
    'errors': errors[0],
    'bytes': delivered[0] * record_bytes,
    'seconds': elapsed,
    'latency_ms': {'p50': pct(0.50), 'p99': pct(0.99), 'max': pct(1.0)},
}))
