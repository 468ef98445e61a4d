// What the writer reads back from a table's metadata: the Kafka offsets its current snapshot
// holds (the `wharf.offsets` and `wharf.topic-id` summary entries).

import type { LoadedTable } from './iceberg/catalog.ts';
import { currentSnapshot } from './iceberg/metadata.ts';

/** Snapshot summary key: JSON object, Kafka partition -> next offset whose record is not in the table. */
export const OFFSETS_SUMMARY_KEY = 'wharf.offsets';
/** Snapshot summary key: the id of the topic the offsets belong to. */
export const TOPIC_ID_SUMMARY_KEY = 'wharf.topic-id';

/**
 * Next offset per partition held by the current snapshot (0 for partitions it has none of). Offsets
 * of another topic of the same name (deleted and created again) do not count: the new topic's
 * records are all new to the table.
 */
export function summaryOffsets(table: LoadedTable, partitionCount: number, topicId: string): number[] {
  const offsets = new Array<number>(partitionCount).fill(0);
  const summary = currentSnapshot(table.metadata)?.summary;
  const text = summary?.[OFFSETS_SUMMARY_KEY];
  if (text === undefined) return offsets;
  const committedTopicId = summary?.[TOPIC_ID_SUMMARY_KEY];
  if (committedTopicId !== undefined && committedTopicId !== topicId) return offsets;
  const parsed = JSON.parse(text) as Record<string, number>;
  for (const [partition, offset] of Object.entries(parsed)) {
    const p = Number(partition);
    if (p >= 0 && p < partitionCount && Number.isSafeInteger(offset) && offset >= 0) offsets[p] = offset;
  }
  return offsets;
}
