// Fetch: stored batches are returned as they are (a list of buffers, never joined). Long poll:
// when fewer than minBytes are ready, wait until a fetched partition's high watermark moves or
// maxWaitMs passes, then read again. No fetch sessions: sessionId 0 tells clients to send full
// requests (KIP-227 allows a broker to decline sessions).

import type {
  FetchRequest, FetchRequestPartition, FetchResponse, FetchResponsePartition, FetchResponseTopic,
} from '../../protocol/apis/fetch.ts';
import { ErrorCode } from '../../protocol/errors.ts';
import { fetchBytesTotal } from '../../metrics/registry.ts';
import type { PartitionLog } from '../../log/partition-log.ts';
import { releaseAll, type ReadLease } from '../../storage/stream.ts';
import type { RequestContext } from '../context.ts';
import type { OpenTopic } from '../topics.ts';

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(false); }, { once: true });
  });
}

const EMPTY = Buffer.alloc(0);

/** Upper bound on one long poll, whatever the client asks. */
const MAX_WAIT_CAP_MS = 30_000;

interface Target {
  topic: FetchResponseTopic;
  request: FetchRequestPartition;
  log: PartitionLog | undefined;
}

function emptyPartition(partitionIndex: number, errorCode: number): FetchResponsePartition {
  return {
    partitionIndex, errorCode, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1,
    abortedTransactions: null, preferredReadReplica: -1, records: EMPTY,
  };
}

function resolveTopic(ctx: RequestContext, name: string, topicId: string): OpenTopic | undefined {
  if (ctx.apiVersion >= 13) return ctx.broker.topics.getById(topicId);
  return ctx.broker.topics.get(name);
}

interface Round {
  bytes: number;
  errors: boolean;
  parts: FetchResponsePartition[];
  /** Pins of the batches read from the log cache: released once they are written. */
  leases: ReadLease[];
}

/** Reads every partition once; returns the bytes gathered and whether an error was met. */
async function readAll(targets: Target[], maxBytes: number): Promise<Round> {
  let remaining = maxBytes;
  let bytes = 0;
  let errors = false;
  const parts: FetchResponsePartition[] = [];
  const leases: ReadLease[] = [];
  for (const target of targets) {
    const { request, log } = target;
    if (!log) {
      errors = true;
      parts.push(emptyPartition(request.partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION));
      continue;
    }
    // KIP-74: the first non-empty partition returns at least one batch even past the limits.
    const limit = Math.min(request.partitionMaxBytes, bytes === 0 ? Math.max(remaining, 1) : remaining);
    const result = limit > 0 || bytes === 0
      ? await log.read(request.fetchOffset, Math.max(limit, 1))
      : { errorCode: ErrorCode.NONE, batches: [], highWatermark: log.highWatermark(), logStartOffset: log.logStartOffset() };
    if (result.errorCode !== ErrorCode.NONE) errors = true;
    if (result.lease !== undefined) leases.push(result.lease);
    let size = 0;
    for (const batch of result.batches) size += batch.length;
    bytes += size;
    remaining = Math.max(0, remaining - size);
    parts.push({
      partitionIndex: request.partition,
      errorCode: result.errorCode,
      highWatermark: result.highWatermark,
      lastStableOffset: result.highWatermark,
      logStartOffset: result.logStartOffset,
      abortedTransactions: null,
      preferredReadReplica: -1,
      records: result.batches,
    });
  }
  return { bytes, errors, parts, leases };
}

export async function handleFetch(ctx: RequestContext, request: FetchRequest): Promise<FetchResponse> {
  const topics: FetchResponseTopic[] = [];
  const targets: Target[] = [];
  for (const t of request.topics) {
    const open = resolveTopic(ctx, t.topic, t.topicId);
    const topic: FetchResponseTopic = { topic: t.topic, topicId: t.topicId, partitions: [] };
    topics.push(topic);
    for (const p of t.partitions) targets.push({ topic, request: p, log: open?.partitions[p.partition] });
  }
  const maxBytes = request.maxBytes > 0 ? request.maxBytes : 0x7fffffff;
  const deadline = Date.now() + Math.min(Math.max(request.maxWaitMs, 0), MAX_WAIT_CAP_MS);
  let round = await readAll(targets, maxBytes);
  while (!round.errors && round.bytes < request.minBytes && !ctx.broker.stopping.aborted) {
    const waitMs = deadline - Date.now();
    if (waitMs <= 0) break;
    const abort = new AbortController();
    const onStop = (): void => abort.abort();
    ctx.broker.stopping.addEventListener('abort', onStop, { once: true });
    // Wait for the high watermark to pass what this round saw.
    const waits = targets.map((t, i) =>
      t.log!.waitForData(Math.max(t.request.fetchOffset, round.parts[i]!.highWatermark), waitMs, abort.signal));
    if (waits.length === 0) waits.push(sleep(waitMs, abort.signal));
    const advanced = await Promise.race(waits);
    abort.abort();
    ctx.broker.stopping.removeEventListener('abort', onStop);
    if (!advanced && Date.now() >= deadline) break;
    const previous = round;
    round = await readAll(targets, maxBytes);
    releaseAll(previous.leases);
  }
  targets.forEach((t, i) => t.topic.partitions.push(round.parts[i]!));
  ctx.responseLeases.push(...round.leases);
  fetchBytesTotal.inc(round.bytes);
  return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, sessionId: 0, responses: topics };
}
