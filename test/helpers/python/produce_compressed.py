"""Produces COUNT messages per compression codec with an idempotent, acks=all confluent-kafka
(librdkafka) producer, one producer and one topic (<prefix>-<codec>) per codec.
Message i of codec c: key b"<c>-<i>", headers [("codec", c), ("i", str(i))], value
  digest = sha256("<c>:<i>"), text = "<c>:<i>:" + digest.hex()
  value = text * (1 + i % 20) + digest[:i % 33]     (text is ASCII; the tail is binary)
which test/integration/python-compression.test.ts recomputes. Prints one JSON summary line
per codec: {"codec", "topic", "delivered", "failed", "errors"}. Exits 1 if any message failed."""
import argparse
import hashlib
import json
import sys

from confluent_kafka import Producer


def make_value(codec, i):
    digest = hashlib.sha256(('%s:%d' % (codec, i)).encode()).digest()
    text = ('%s:%d:%s' % (codec, i, digest.hex())).encode()
    return text * (1 + i % 20) + digest[: i % 33]


def produce_codec(bootstrap, topic, codec, count):
    state = {'delivered': 0, 'failed': 0, 'errors': []}

    def on_delivery(error, message):
        if error is None:
            state['delivered'] += 1
        else:
            state['failed'] += 1
            if len(state['errors']) < 5:
                state['errors'].append(str(error))

    def on_error(error):
        # Transport errors are retried by librdkafka; fatal ones are not.
        if error.fatal():
            state['errors'].append('fatal: %s' % error)
        print('producer error (%s): %s' % (codec, error), file=sys.stderr)

    producer = Producer({
        'bootstrap.servers': bootstrap,
        'enable.idempotence': True,
        'acks': 'all',
        'compression.type': codec,
        'linger.ms': 20,
        'message.timeout.ms': 60000,
        'error_cb': on_error,
    })
    for i in range(count):
        while True:
            try:
                producer.produce(
                    topic,
                    key=('%s-%d' % (codec, i)).encode(),
                    value=make_value(codec, i),
                    headers=[('codec', codec.encode()), ('i', str(i).encode())],
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(90)
    if remaining:
        state['errors'].append('%d messages still queued after flush' % remaining)
    return {'codec': codec, 'topic': topic, **state}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--bootstrap', required=True)
    parser.add_argument('--topic-prefix', required=True)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('codecs', nargs='+')
    args = parser.parse_args()
    ok = True
    for codec in args.codecs:
        summary = produce_codec(args.bootstrap, '%s-%s' % (args.topic_prefix, codec), codec, args.count)
        print(json.dumps(summary), flush=True)
        ok = ok and summary['delivered'] == args.count and not summary['errors']
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
