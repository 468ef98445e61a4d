// Request and response headers.
//
//   request header v0   api_key int16 | api_version int16 | correlation_id int32
//   request header v1   v0 | client_id nullable string (int16 length, -1 = null)
//   request header v2   v1 | tagged fields          (client_id stays a NON-compact string)
//   response header v0  correlation_id int32
//   response header v1  v0 | tagged fields
//
// A request whose body version is flexible uses request header v2, else v1 (v0 only for
// ControlledShutdown v0). A flexible response uses response header v1, else v0, except
// ApiVersions: its response header is always v0, so that a client that does not yet know the
// broker's versions can always read the error code that follows.

import { ProtocolError } from './errors.ts';
import { Reader, Writer } from './primitives.ts';

export const API_VERSIONS_KEY = 18;
const CONTROLLED_SHUTDOWN_KEY = 7;

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

export interface DecodedRequestHeader extends RequestHeader {
  /** Offset in the frame of the first body byte. */
  bodyOffset: number;
}

/**
 * Request header version for a request whose body is flexible (`flexible`) or not. The flexible
 * rule also holds for versions above the ones we support (an ApiVersions v4 request still has a
 * v2 header), which lets the broker answer such requests with UNSUPPORTED_VERSION.
 */
export function requestHeaderVersion(apiKey: number, apiVersion: number, flexible: boolean): 0 | 1 | 2 {
  if (apiKey === CONTROLLED_SHUTDOWN_KEY && apiVersion === 0) return 0;
  return flexible ? 2 : 1;
}

export function responseHeaderVersion(apiKey: number, flexible: boolean): 0 | 1 {
  if (apiKey === API_VERSIONS_KEY) return 0;
  return flexible ? 1 : 0;
}

/** Reads api key and version only (the first 4 bytes), to pick the header version. */
export function peekApiKeyAndVersion(frame: Buffer): { apiKey: number; apiVersion: number } {
  if (frame.length < 4) throw new ProtocolError(`truncated: request frame of ${frame.length} bytes has no header`);
  return { apiKey: frame.readInt16BE(0), apiVersion: frame.readInt16BE(2) };
}

export function decodeRequestHeaderVersion(frame: Buffer, headerVersion: 0 | 1 | 2): DecodedRequestHeader {
  const r = new Reader(frame);
  const apiKey = r.int16();
  const apiVersion = r.int16();
  const correlationId = r.int32();
  const clientId = headerVersion >= 1 ? r.nullableString() : null;
  if (headerVersion >= 2) r.taggedFields();
  return { apiKey, apiVersion, correlationId, clientId, bodyOffset: r.pos };
}

export function encodeRequestHeader(w: Writer, header: RequestHeader, headerVersion: 0 | 1 | 2): void {
  w.int16(header.apiKey);
  w.int16(header.apiVersion);
  w.int32(header.correlationId);
  if (headerVersion >= 1) w.nullableString(header.clientId);
  if (headerVersion >= 2) w.emptyTaggedFields();
}

export function encodeResponseHeader(w: Writer, correlationId: number, headerVersion: 0 | 1): void {
  w.int32(correlationId);
  if (headerVersion >= 1) w.emptyTaggedFields();
}

/** Reads a response header; returns the correlation id, leaves `r` at the body. */
export function decodeResponseHeader(r: Reader, headerVersion: 0 | 1): number {
  const correlationId = r.int32();
  if (headerVersion >= 1) r.taggedFields();
  return correlationId;
}
