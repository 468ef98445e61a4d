// What decoding one remote-write request yields: the records to produce (one per series, one per
// metadata family) and the counts the response and the metrics report. Decoding either returns
// all of it or throws an InvalidWriteError, so nothing of a bad request is ever produced.
//
// The records are columns (RecordColumns): no object per record, and a series' value stays a
// range of the request (or of the request's arena when it was rewritten).

import type { ProducerRecord } from '../../src/broker/in-process-producer.ts';
import type { RecordColumns } from '../../src/protocol/record-encoder.ts';

/** The remote-write protocol version of a request (from its Content-Type). */
export const ProtocolVersion = { V1: '1.0', V2: '2.0' } as const;
export type ProtocolVersion = (typeof ProtocolVersion)[keyof typeof ProtocolVersion];

export interface WriteCounts {
  samples: number;
  histograms: number;
  exemplars: number;
}

export class DecodedWrite implements WriteCounts {
  readonly columns: RecordColumns;
  /** Series records (the rest of `columns` carry metadata only). */
  readonly series: number;
  readonly samples: number;
  readonly histograms: number;
  readonly exemplars: number;

  constructor(columns: RecordColumns, series: number, counts: WriteCounts) {
    this.columns = columns;
    this.series = series;
    this.samples = counts.samples;
    this.histograms = counts.histograms;
    this.exemplars = counts.exemplars;
  }

  /** The records as objects, made anew at each read (tests and tools: the receiver produces `columns`). */
  get records(): ProducerRecord[] {
    return this.columns.toRecords();
  }
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
