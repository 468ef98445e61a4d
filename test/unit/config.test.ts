import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envName, loadConfig } from '../../src/config/config.ts';
import { BROKER_NODE_FLAGS } from '../../src/cli/node-flags.ts';

describe('configuration', () => {
  it('takes Kafka setting names from the file, WHARF_ variables over the file, flags over both', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wharf-config-'));
    try {
      const file = path.join(dir, 'wharf.yaml');
      writeFileSync(file, 'num.partitions: 3\nauto.create.topics.enable: false\ns3:\n  bucket: from-file\n');
      const config = loadConfig({ file, env: { WHARF_NUM_PARTITIONS: '6' }, overrides: { 'kafka.port': '19093' } });
      expect(config.numPartitions).toBe(6);
      expect(config.autoCreateTopics).toBe(false);
      expect(config.s3.bucket).toBe('from-file');
      expect(config.kafkaPort).toBe(19093);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the variable of a setting by upper-casing it', () => {
    expect(envName('socket.request.max.bytes')).toBe('WHARF_SOCKET_REQUEST_MAX_BYTES');
  });

  it('refuses unknown settings and malformed values with the setting named', () => {
    expect(() => loadConfig({ env: {}, overrides: { 'num.partition': '3' } })).toThrow(/unknown setting num.partition/);
    expect(() => loadConfig({ env: { WHARF_KAFKA_PORT: 'ninety' } })).toThrow(/kafka.port: not an integer/);
    expect(() => loadConfig({ env: { WHARF_OBJECT_STORE: 'ftp' } })).toThrow(/object.store/);
  });

  it('starts the broker with the same V8 flags from npm start as from the test harness', () => {
    const pkg = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${BROKER_NODE_FLAGS.join(' ')} src/cli/main.ts start`);
  });
});
