// What the receivers answer: Export*ServiceResponse (with partial_success when items were
// rejected) and google.rpc.Status for errors, in protobuf or OTLP/JSON; RetryInfo for overload.

import { SIGNALS, type Signal } from './schema.ts';
import { WireType, WireWriter } from './wire.ts';

export type BodyFormat = 'protobuf' | 'json';

/** gRPC status codes used here (google.rpc.Code). */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/** The retry hint of overload and unavailability answers (Retry-After, RetryInfo.retry_delay). */
export const RETRY_AFTER_SECONDS = 1;

/** Export*ServiceResponse; without rejected items it is the empty message (`{}` in JSON). */
export function exportResponse(signal: Signal, format: BodyFormat, rejected: number, errorMessage: string): Buffer {
  const hasPartial = rejected > 0 || errorMessage.length > 0;
  if (format === 'json') {
    if (!hasPartial) return Buffer.from('{}');
    const rejectedJson = SIGNALS[signal].rejectedField.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
    return Buffer.from(JSON.stringify({ partialSuccess: { [rejectedJson]: String(rejected), errorMessage } }));
  }
  if (!hasPartial) return Buffer.alloc(0);
  const w = new WireWriter(64 + errorMessage.length * 3);
  w.tag(1, WireType.LEN);
  const mark = w.beginMessage();
  if (rejected > 0) {
    w.tag(1, WireType.VARINT);
    w.varint64(rejected % 4294967296, Math.floor(rejected / 4294967296));
  }
  if (errorMessage.length > 0) {
    w.tag(2, WireType.LEN);
    w.string(errorMessage);
  }
  w.endMessage(mark);
  return Buffer.from(w.finish());
}

/** google.protobuf.Any holding google.rpc.RetryInfo{retry_delay: seconds}. */
export function retryInfoAny(retryDelaySeconds: number): Buffer {
  const w = new WireWriter(96);
  w.tag(1, WireType.LEN);
  w.string(RETRY_INFO_TYPE_URL);
  w.tag(2, WireType.LEN);
  const any = w.beginMessage();
  w.tag(1, WireType.LEN); // RetryInfo.retry_delay
  const duration = w.beginMessage();
  w.tag(1, WireType.VARINT); // Duration.seconds
  w.uint32(retryDelaySeconds);
  w.endMessage(duration);
  w.endMessage(any);
  return Buffer.from(w.finish());
}

/** google.rpc.Status{code, message, details} in protobuf. */
export function statusProto(code: number, message: string, details: Buffer[] = []): Buffer {
  const w = new WireWriter(64 + message.length * 3);
  if (code !== 0) {
    w.tag(1, WireType.VARINT);
    w.uint32(code);
  }
  if (message.length > 0) {
    w.tag(2, WireType.LEN);
    w.string(message);
  }
  for (const detail of details) {
    w.tag(3, WireType.LEN);
    w.bytes(detail);
  }
  return Buffer.from(w.finish());
}

/** google.rpc.Status as the HTTP error body, in the request's format. */
export function statusBody(format: BodyFormat, code: number, message: string, retryDelaySeconds?: number): Buffer {
  if (format === 'json') {
    const status: Record<string, unknown> = { code, message };
    if (retryDelaySeconds !== undefined) {
      status.details = [{ '@type': RETRY_INFO_TYPE_URL, retryDelay: `${retryDelaySeconds}s` }];
    }
    return Buffer.from(JSON.stringify(status));
  }
  return statusProto(code, message, retryDelaySeconds === undefined ? [] : [retryInfoAny(retryDelaySeconds)]);
}

export function contentTypeOf(format: BodyFormat): string {
  return format === 'json' ? 'application/json' : 'application/x-protobuf';
}
