// What decoding one remote-write request yields: the records to produce (one per series, one per
// metadata family) and the counts the response and the metrics report. Decoding either returns
// all of it or throws an InvalidWriteError, so nothing of a bad request is ever produced.

import type { ProducerRecord } from '../../src/broker/in-process-producer.ts';

export interface DecodedWrite {
  records: ProducerRecord[];
  samples: number;
  histograms: number;
  exemplars: number;
  /** Series records (the rest of `records` carry metadata only). */
  series: number;
}

/** Why a request was rejected: the `reason` label of wharf_remote_write_rejected_requests_total. */
export const RejectReason = {
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  TOO_LARGE: 'too_large',
  BAD_SNAPPY: 'bad_snappy',
  BAD_PROTOBUF: 'bad_protobuf',
  INVALID_SERIES: 'invalid_series',
  UNAVAILABLE: 'unavailable',
  /** The sender closed the connection before its body arrived. */
  CLIENT_GONE: 'client_gone',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

/** A request that can never succeed as sent: answered 4xx with `message`, never retried by senders. */
export class InvalidWriteError extends Error {
  readonly status: number;
  readonly reason: RejectReason;
  constructor(status: number, reason: RejectReason, message: string) {
    super(message);
    this.name = 'InvalidWriteError';
    this.status = status;
    this.reason = reason;
  }
}

export function invalidSeries(message: string): InvalidWriteError {
  return new InvalidWriteError(400, RejectReason.INVALID_SERIES, message);
}
