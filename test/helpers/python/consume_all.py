"""Reads every message of the given topics from the beginning to the end of each partition
with confluent-kafka (librdkafka) and prints one JSON line per message:
{"t": topic, "p": partition, "o": offset, "k": base64|null, "v": base64|null,
 "h": [[name, base64|null], ...]|null}
Partitions are assigned directly (no group membership, no commits). Exits 0 once every
partition has reported end-of-partition, 2 on a consume error, 3 on timeout.
Run with /usr/bin/python3 (Debian's python3-confluent-kafka)."""
import argparse
import base64
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition


def b64(data):
    return None if data is None else base64.b64encode(data).decode('ascii')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--bootstrap', required=True)
    parser.add_argument('--timeout-s', type=float, default=60)
    parser.add_argument('topics', nargs='+')
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout_s

    consumer = Consumer({
        'bootstrap.servers': args.bootstrap,
        'group.id': 'wharf-test-reader-' + uuid.uuid4().hex,
        'enable.auto.commit': False,
        'enable.partition.eof': True,
        'auto.offset.reset': 'earliest',
        'fetch.wait.max.ms': 100,
    })
    assignment = []
    for topic in args.topics:
        while True:
            remaining_s = max(0.5, min(5.0, deadline - time.monotonic()))
            try:
                metadata = consumer.list_topics(topic, timeout=remaining_s)
            except KafkaException as error:
                if time.monotonic() > deadline:
                    print('no metadata for topic %s: %s' % (topic, error), file=sys.stderr)
                    sys.exit(3)
                continue
            topic_metadata = metadata.topics[topic]
            if topic_metadata.error is None and topic_metadata.partitions:
                break
            if time.monotonic() > deadline:
                print('topic %s has no partitions: %s' % (topic, topic_metadata.error), file=sys.stderr)
                sys.exit(3)
            time.sleep(0.2)
        for partition in sorted(topic_metadata.partitions):
            assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
    consumer.assign(assignment)
    waiting = {(tp.topic, tp.partition) for tp in assignment}
    out = sys.stdout
    while waiting:
        if time.monotonic() > deadline:
            print('timed out; partitions not at their end: %s' % sorted(waiting), file=sys.stderr)
            sys.exit(3)
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    waiting.discard((message.topic(), message.partition()))
                    continue
                print('consume error: %s' % error, file=sys.stderr)
                sys.exit(2)
            headers = message.headers()
            out.write(json.dumps({
                't': message.topic(),
                'p': message.partition(),
                'o': message.offset(),
                'k': b64(message.key()),
                'v': b64(message.value()),
                'h': None if headers is None else [[name, b64(value)] for name, value in headers],
            }) + '\n')
        out.flush()
    consumer.close()


if __name__ == '__main__':
    main()
