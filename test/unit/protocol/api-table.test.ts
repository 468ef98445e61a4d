import { describe, expect, it } from 'vitest';
import {
  API_TABLE,
  ApiKey,
  decodeRequest,
  decodeRequestHeader,
  ErrorCode,
  errorName,
  isImplemented,
  isSupported,
  ProtocolError,
  requestHeaderVersionOf,
  responseHeaderVersionOf,
  supportedVersions,
} from '../../../src/protocol/index.ts';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('the API table', () => {
  it('lists every API key from 0 up, implemented or not', () => {
    expect(API_TABLE.map((r) => r.apiKey)).toEqual(API_TABLE.map((_, i) => i));
    expect(API_TABLE.length).toBeGreaterThanOrEqual(70);
    expect(API_TABLE[18]!.name).toBe('ApiVersions');
    expect(API_TABLE[32]).toMatchObject({ name: 'DescribeConfigs', advertised: null });
  });

  it('advertises the versions clients negotiate against', () => {
    expect(supportedVersions()).toEqual([
      { apiKey: 0, minVersion: 0, maxVersion: 9 },
      { apiKey: 1, minVersion: 0, maxVersion: 12 },
      { apiKey: 2, minVersion: 0, maxVersion: 6 },
      { apiKey: 3, minVersion: 0, maxVersion: 12 },
      { apiKey: 8, minVersion: 0, maxVersion: 8 },
      { apiKey: 9, minVersion: 0, maxVersion: 8 },
      { apiKey: 10, minVersion: 0, maxVersion: 4 },
      { apiKey: 11, minVersion: 0, maxVersion: 9 },
      { apiKey: 12, minVersion: 0, maxVersion: 4 },
      { apiKey: 13, minVersion: 0, maxVersion: 5 },
      { apiKey: 14, minVersion: 0, maxVersion: 5 },
      { apiKey: 18, minVersion: 0, maxVersion: 3 },
      { apiKey: 19, minVersion: 0, maxVersion: 7 },
      { apiKey: 20, minVersion: 0, maxVersion: 6 },
      { apiKey: 22, minVersion: 0, maxVersion: 4 },
    ]);
  });

  it('reports versions outside the advertised range as unsupported', () => {
    expect(isSupported(ApiKey.PRODUCE, 9)).toBe(true);
    expect(isSupported(ApiKey.PRODUCE, 0)).toBe(true);
    expect(isSupported(ApiKey.LIST_OFFSETS, 7)).toBe(false);
    expect(isSupported(ApiKey.PRODUCE, 10)).toBe(false);
    expect(isSupported(ApiKey.FETCH, 13)).toBe(false);
    expect(isSupported(ApiKey.API_VERSIONS, 4)).toBe(false);
    expect(isSupported(32, 0)).toBe(false);
    expect(isSupported(999, 0)).toBe(false);
    expect(isSupported(-1, 0)).toBe(false);
    expect(isImplemented(ApiKey.METADATA)).toBe(true);
    expect(isImplemented(32)).toBe(false);
  });

  it('refuses to decode a version the codec does not know, with UNSUPPORTED_VERSION', () => {
    const err = thrown(() => decodeRequest(ApiKey.API_VERSIONS, 4, Buffer.alloc(16), 0));
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).errorCode).toBe(ErrorCode.UNSUPPORTED_VERSION);
    const unimplemented = thrown(() => decodeRequest(32 as typeof ApiKey.METADATA, 0, Buffer.alloc(16), 0));
    expect(unimplemented).toBeInstanceOf(ProtocolError);
  });
});

describe('header versions', () => {
  it('follow the body: flexible request -> header v2, flexible response -> header v1', () => {
    expect(requestHeaderVersionOf(ApiKey.FETCH, 11)).toBe(1);
    expect(requestHeaderVersionOf(ApiKey.FETCH, 12)).toBe(2);
    expect(responseHeaderVersionOf(ApiKey.FETCH, 11)).toBe(0);
    expect(responseHeaderVersionOf(ApiKey.FETCH, 12)).toBe(1);
    expect(requestHeaderVersionOf(ApiKey.PRODUCE, 9)).toBe(2);
    expect(requestHeaderVersionOf(7, 0)).toBe(0); // ControlledShutdown v0
  });

  it('keep the ApiVersions response header at v0, even for flexible versions', () => {
    expect(requestHeaderVersionOf(ApiKey.API_VERSIONS, 3)).toBe(2);
    expect(responseHeaderVersionOf(ApiKey.API_VERSIONS, 3)).toBe(0);
  });

  it('read the header of an ApiVersions request newer than we support (to answer it)', () => {
    const frame = Buffer.from('0012000400000009000178' + '00' + '00', 'hex');
    expect(decodeRequestHeader(frame)).toEqual({ apiKey: 18, apiVersion: 4, correlationId: 9, clientId: 'x', bodyOffset: 12 });
  });

  it('raise ProtocolError on a frame too short for a header', () => {
    expect(() => decodeRequestHeader(Buffer.from([0, 3, 0]))).toThrow(ProtocolError);
    expect(() => decodeRequestHeader(Buffer.from('000300010000000100', 'hex'))).toThrow(ProtocolError);
  });
});

describe('error codes', () => {
  it('carry Kafka numbers and names', () => {
    expect(ErrorCode.NOT_LEADER_OR_FOLLOWER).toBe(6);
    expect(ErrorCode.UNSUPPORTED_VERSION).toBe(35);
    expect(ErrorCode.UNKNOWN_PRODUCER_ID).toBe(59);
    expect(ErrorCode.MEMBER_ID_REQUIRED).toBe(79);
    expect(ErrorCode.FENCED_INSTANCE_ID).toBe(82);
    expect(ErrorCode.INVALID_RECORD).toBe(87);
    expect(ErrorCode.UNSTABLE_OFFSET_COMMIT).toBe(88);
    expect(errorName(27)).toBe('REBALANCE_IN_PROGRESS');
    expect(errorName(-1)).toBe('UNKNOWN_SERVER_ERROR');
    expect(errorName(5000)).toBe('UNKNOWN(5000)');
  });
});
