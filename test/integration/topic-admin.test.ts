// Topic administration with a Kafka admin client: create (with configs), refuse duplicates and
// unknown configs, delete, and re-create a topic that starts empty.

import { describe, expect, it } from 'vitest';
import { printBrokerLogsOnFailure, startBroker } from '../helpers/broker.ts';
import { kafkajsClient } from '../helpers/kafka.ts';

printBrokerLogsOnFailure();

describe('topic administration', () => {
  it('creates, refuses duplicates and unknown configs, deletes and re-creates topics', async () => {
    const broker = await startBroker({ name: 'topic-admin', env: { WHARF_AUTO_CREATE_TOPICS: 'false' } });
    try {
      const kafka = kafkajsClient(broker.bootstrap);
      const admin = kafka.admin();
      await admin.connect();
      expect(await admin.createTopics({
        topics: [{ topic: 'orders', numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      })).toBe(true);
      // kafkajs answers false when the broker says TOPIC_ALREADY_EXISTS (36).
      expect(await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 1 }] })).toBe(false);
      await expect(admin.createTopics({ topics: [{ topic: 'bad', configEntries: [{ name: 'no.such.config', value: '1' }] }] }))
        .rejects.toThrow();
      const metadata = await admin.fetchTopicMetadata({ topics: ['orders'] });
      expect(metadata.topics[0]!.partitions).toHaveLength(3);

      const producer = kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      await producer.send({ topic: 'orders', acks: -1, messages: [{ value: 'old', partition: 0 }] });
      await admin.deleteTopics({ topics: ['orders'] });
      expect(await admin.listTopics()).not.toContain('orders');
      await expect(producer.send({ topic: 'orders', acks: -1, messages: [{ value: 'lost', partition: 0 }] })).rejects.toThrow();
      await producer.disconnect();

      await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 1 }] });
      const offsets = await admin.fetchTopicOffsets('orders');
      expect(offsets).toEqual([expect.objectContaining({ partition: 0, low: '0', high: '0' })]);
      await admin.disconnect();
    } finally {
      await broker.stop();
    }
  });
});
