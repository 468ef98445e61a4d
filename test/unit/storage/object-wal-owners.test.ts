import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterModel } from '../../../src/metadata/cluster-model.ts';
import { EmbeddedMetadataStore } from '../../../src/metadata/embedded.ts';
import { LocalObjectStore } from '../../../src/storage/objectstore/local.ts';
import { ObjectWal } from '../../../src/storage/wal/object-wal.ts';
import { JsonWalOwnerStore, WalFencedError } from '../../../src/storage/wal/wal-owners.ts';

let dir: string;
let metadataStore: EmbeddedMetadataStore;
let owners: JsonWalOwnerStore;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wharf-wal-owners-'));
  metadataStore = await EmbeddedMetadataStore.open(path.join(dir, 'metadata'));
  owners = new JsonWalOwnerStore(new ClusterModel(metadataStore));
});

afterEach(async () => {
  await metadataStore.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('object WAL owner records in the metadata store', () => {
  it('writes only over the version it read (compare-and-swap), 0 meaning absent', async () => {
    expect(await owners.read(3)).toBeUndefined();
    const first = { epoch: 1, sealedBelow: 0, sealed: [] };
    expect(await owners.write(3, first, 0)).toBe(true);
    expect(await owners.write(3, first, 0)).toBe(false);
    const read = await owners.read(3);
    expect(read?.record).toEqual(first);
    const second = { epoch: 2, sealedBelow: 2, sealed: [[1, 4096]] as Array<[number, number]> };
    expect(await owners.write(3, second, read!.version)).toBe(true);
    expect(await owners.write(3, { ...second, epoch: 3 }, read!.version)).toBe(false);
    expect((await owners.read(3))?.record).toEqual(second);
    expect(await owners.read(4)).toBeUndefined();
  });

  it('each open takes the next epoch, and a writer of an older epoch is fenced', async () => {
    const objectStore = new LocalObjectStore(path.join(dir, 'objects'));
    const open = async (): Promise<ObjectWal> => {
      const wal = await ObjectWal.open({ objectStore, owners, nodeId: 3, intervalMs: 5, maxObjectBytes: 64 * 1024, capacityBytes: 1024 * 1024 });
      for await (const record of wal.recover()) void record;
      return wal;
    };
    const first = await open();
    await first.append(1, 1, 0, 1, Buffer.alloc(10));
    const second = await open();
    expect(second.epoch).toBe(first.epoch + 1);
    await expect(first.append(1, 1, 1, 1, Buffer.alloc(10))).rejects.toBeInstanceOf(WalFencedError);
    expect(await second.append(1, 2, 1, 1, Buffer.alloc(10))).toBeGreaterThan(0);
    expect((await owners.read(3))?.record).toMatchObject({ epoch: second.epoch, sealedBelow: second.epoch });
    await first.close();
    await second.close();
  });
});
