"""A steady idempotent, acks=all produce load with confluent-kafka (librdkafka) for the
durability test. Message i: key b"<i>", value b"id=<i>;" + filler (60..1000 bytes).
Prints to stdout, flushed as delivery reports arrive:
  A <i> <partition> <offset>     acknowledged by the broker
  F <i> <error>                  failed for good (not acknowledged)
  E <error>                      a producer error (fatal ones make librdkafka give up)
  DONE <delivered> <failed>      at the end
Messages are produced at --rate per second so that a broker kill lands in the middle of the
load; librdkafka retries through the outage (message.timeout.ms is high)."""
import argparse
import sys
import time

from confluent_kafka import Producer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--bootstrap', required=True)
    parser.add_argument('--topic', required=True)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--rate', type=int, default=5000, help='messages per second')
    parser.add_argument('--message-timeout-ms', type=int, default=60000)
    args = parser.parse_args()

    out = sys.stdout
    counts = {'delivered': 0, 'failed': 0}

    def on_delivery(error, message):
        i = message.key().decode()
        if error is None:
            counts['delivered'] += 1
            out.write('A %s %d %d\n' % (i, message.partition(), message.offset()))
        else:
            counts['failed'] += 1
            out.write('F %s %s\n' % (i, str(error).replace('\n', ' ')))

    def on_error(error):
        out.write('E %s%s\n' % ('FATAL ' if error.fatal() else '', str(error).replace('\n', ' ')))

    producer = Producer({
        'bootstrap.servers': args.bootstrap,
        'enable.idempotence': True,
        'acks': 'all',
        'linger.ms': 5,
        'message.timeout.ms': args.message_timeout_ms,
        'retry.backoff.ms': 100,
        'reconnect.backoff.ms': 50,
        'reconnect.backoff.max.ms': 500,
        'error_cb': on_error,
    })
    filler = bytes(range(32, 127)) * 11
    per_tick = max(1, args.rate // 100)
    next_tick = time.monotonic()
    i = 0
    while i < args.count:
        for _ in range(min(per_tick, args.count - i)):
            value = b'id=%d;' % i + filler[: 60 + (i * 7919) % 940]
            while True:
                try:
                    producer.produce(args.topic, key=str(i).encode(), value=value, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            i += 1
        next_tick += 0.01
        # poll() returns as soon as it has served a callback: keep polling until the tick ends.
        while True:
            remaining_s = next_tick - time.monotonic()
            producer.poll(max(0.0, remaining_s))
            if remaining_s <= 0:
                break
        out.flush()
    while len(producer) > 0:
        producer.poll(0.1)
        out.flush()
        # message.timeout.ms bounds this loop: every queued message is delivered or fails.
    producer.flush(10)
    out.write('DONE %d %d\n' % (counts['delivered'], counts['failed']))
    out.flush()
    sys.exit(0 if counts['failed'] == 0 else 1)


if __name__ == '__main__':
    main()
