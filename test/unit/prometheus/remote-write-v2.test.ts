// Remote write 2.0 decoding: an io.prometheus.write.v2.Request (symbols + label references)
// becomes the same records a 1.0 request would: one prometheus.WriteRequest per series with its
// labels resolved, samples, native histograms and exemplars, plus the series' metadata.

import { describe, expect, it } from 'vitest';
import { InvalidWriteError } from '../../../connectors/prometheus/decoded-write.ts';
import { CREATED_TIMESTAMP_HEADER, decodeRequestV2 } from '../../../connectors/prometheus/remote-write-v2.ts';
import { decodeWriteRequest, encodeRequestV2, encodeWriteRequest, seriesKey } from '../../helpers/prometheus.ts';

const T0 = 1_700_000_000_000;

/** Builds a 2.0 request from series given with plain labels: the symbols table is derived. */
function requestV2(series: {
  labels: [string, string][];
  samples?: { value: number; timestamp: number }[];
  histograms?: Record<string, unknown>[];
  exemplars?: { labels: [string, string][]; value: number; timestamp: number }[];
  metadata?: { type: number; help?: string; unit?: string };
  created_timestamp?: number;
}[]): Buffer {
  const symbols = [''];
  const ref = (s: string): number => {
    let i = symbols.indexOf(s);
    if (i < 0) i = symbols.push(s) - 1;
    return i;
  };
  const refs = (pairs: [string, string][]): number[] => pairs.flatMap(([n, v]) => [ref(n), ref(v)]);
  const timeseries = series.map((s) => ({
    labels_refs: refs(s.labels),
    samples: s.samples ?? [],
    histograms: s.histograms ?? [],
    exemplars: (s.exemplars ?? []).map((e) => ({ labels_refs: refs(e.labels), value: e.value, timestamp: e.timestamp })),
    metadata: s.metadata ? { type: s.metadata.type, help_ref: ref(s.metadata.help ?? ''), unit_ref: ref(s.metadata.unit ?? '') } : undefined,
    created_timestamp: s.created_timestamp ?? 0,
  }));
  return encodeRequestV2({ symbols, timeseries });
}

const histogram = {
  count_int: 3, sum: 1.5, schema: 2, zero_threshold: 0.0001, zero_count_int: 0,
  positive_spans: [{ offset: 1, length: 2 }], positive_deltas: [1, 1], reset_hint: 1, timestamp: T0,
};
const floatHistogram = {
  count_float: 2.5, sum: 0.5, schema: -53, positive_spans: [{ offset: 0, length: 2 }],
  positive_counts: [1, 1.5], custom_values: [0.1, 1], timestamp: T0,
};

function expectRejected(body: Buffer, message: RegExp): void {
  let thrown: unknown;
  try {
    decodeRequestV2(body);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(InvalidWriteError);
  expect((thrown as InvalidWriteError).status).toBe(400);
  expect((thrown as InvalidWriteError).message).toMatch(message);
}

describe('remote write 2.0 decoding', () => {
  it('writes 1.0-shaped records: labels resolved, samples, histograms, exemplars and metadata', () => {
    const body = requestV2([
      {
        labels: [['__name__', 'http_requests_total'], ['job', 'api'], ['method', 'GET']],
        samples: [{ value: 10, timestamp: T0 }],
        exemplars: [{ labels: [['trace_id', '4bf92f3577b34da6']], value: 1, timestamp: T0 }],
        metadata: { type: 1, help: 'Requests served.', unit: 'requests' },
        created_timestamp: T0 - 60_000,
      },
      {
        labels: [['__name__', 'rpc_latency'], ['job', 'api']],
        histograms: [histogram, floatHistogram],
        metadata: { type: 3 },
      },
    ]);
    const decoded = decodeRequestV2(body);
    expect({ samples: decoded.samples, histograms: decoded.histograms, exemplars: decoded.exemplars, series: decoded.series })
      .toEqual({ samples: 1, histograms: 2, exemplars: 1, series: 2 });

    const [counter, latency] = decoded.records;
    const counterLabels = [{ name: '__name__', value: 'http_requests_total' }, { name: 'job', value: 'api' }, { name: 'method', value: 'GET' }];
    expect(counter!.key!.toString()).toBe(seriesKey(counterLabels));
    expect(decodeWriteRequest(counter!.value!)).toEqual(decodeWriteRequest(encodeWriteRequest({
      timeseries: [{
        labels: counterLabels,
        samples: [{ value: 10, timestamp: T0 }],
        exemplars: [{ labels: [{ name: 'trace_id', value: '4bf92f3577b34da6' }], value: 1, timestamp: T0 }],
      }],
      metadata: [{ type: 1, metric_family_name: 'http_requests_total', help: 'Requests served.', unit: 'requests' }],
    })));
    expect(counter!.headers).toEqual([{ key: CREATED_TIMESTAMP_HEADER, value: Buffer.from(String(T0 - 60_000)) }]);

    expect(latency!.key!.toString()).toBe('rpc_latency{job="api"}');
    expect(latency!.headers).toBeUndefined();
    expect(decodeWriteRequest(latency!.value!)).toEqual(decodeWriteRequest(encodeWriteRequest({
      timeseries: [{ labels: [{ name: '__name__', value: 'rpc_latency' }, { name: 'job', value: 'api' }], histograms: [histogram, floatHistogram] }],
      metadata: [{ type: 3, metric_family_name: 'rpc_latency' }],
    })));
  });

  it('merges entries with the same labels into one record, in request order', () => {
    const series = [['__name__', 'up'], ['job', 'a']] as [string, string][];
    const decoded = decodeRequestV2(requestV2([
      { labels: series, samples: [{ value: 1, timestamp: T0 }] },
      { labels: [['__name__', 'up'], ['job', 'b']], samples: [{ value: 1, timestamp: T0 }] },
      { labels: series, samples: [{ value: 0, timestamp: T0 + 1 }], exemplars: [{ labels: [], value: 0, timestamp: T0 + 1 }] },
    ]));
    expect(decoded.records.map((r) => r.key!.toString())).toEqual(['up{job="a"}', 'up{job="b"}']);
    const merged = decodeWriteRequest(decoded.records[0]!.value!).timeseries;
    expect(merged).toHaveLength(1);
    expect(merged[0]!.samples.map((s) => s.value)).toEqual([1, 0]);
    expect(merged[0]!.exemplars).toEqual([{ labels: [], value: 0, timestamp: String(T0 + 1) }]);
  });

  it('reads label references whether packed or not', () => {
    // Request{symbols: ["", "__name__", "x"], timeseries: [{labels_refs: 1, labels_refs: 2 (unpacked), samples: [{}]}]}
    const body = Buffer.concat([
      Buffer.from([0x22, 0x00, 0x22, 0x08]), Buffer.from('__name__'), Buffer.from([0x22, 0x01]), Buffer.from('x'),
      Buffer.from([0x2a, 0x06, 0x08, 0x01, 0x08, 0x02, 0x12, 0x00]),
    ]);
    const decoded = decodeRequestV2(body);
    expect(decoded.records.map((r) => r.key!.toString())).toEqual(['x{}']);
    expect(decoded.samples).toBe(1);
  });

  describe('refuses the whole request, saying what is wrong', () => {
    it('a label reference past the symbols table', () => {
      const body = encodeRequestV2({ symbols: ['', '__name__', 'up'], timeseries: [{ labels_refs: [1, 7], samples: [{ value: 1, timestamp: T0 }] }] });
      expectRejected(body, /symbol reference 7 at byte \d+ is out of range \(3 symbols\)/);
    });
    it('an odd number of label references', () => {
      const body = encodeRequestV2({ symbols: ['', '__name__', 'up'], timeseries: [{ labels_refs: [1, 2, 1], samples: [] }] });
      expectRejected(body, /timeseries\[0\]: labels_refs has 3 references, not name\/value pairs/);
    });
    it('symbols[0] that is not the empty string', () => {
      const body = encodeRequestV2({ symbols: ['__name__', 'up'], timeseries: [{ labels_refs: [0, 1], samples: [] }] });
      expectRejected(body, /symbols\[0\] must be the empty string/);
    });
    it('unsorted labels', () => {
      expectRejected(requestV2([{ labels: [['job', 'a'], ['__name__', 'up']] }]), /labels are not sorted by name: "__name__" comes after "job"/);
    });
    it('an empty label value', () => {
      expectRejected(requestV2([{ labels: [['__name__', 'up'], ['job', '']] }]), /label "job" has an empty value/);
    });
    it('a metadata help reference past the symbols table', () => {
      const body = encodeRequestV2({ symbols: ['', '__name__', 'up'], timeseries: [{ labels_refs: [1, 2], metadata: { type: 1, help_ref: 9 } }] });
      expectRejected(body, /timeseries\[0\]\.metadata: symbol reference 9 at byte \d+ is out of range/);
    });
    it('a 1.0 WriteRequest sent as 2.0', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: [{ name: '__name__', value: 'up' }], samples: [{ value: 1, timestamp: T0 }] }] });
      expectRejected(body, /fields 1 to 3 of prometheus\.WriteRequest \(1\.0\)/);
    });
    it('garbage', () => expectRejected(Buffer.from('not a protobuf message at all'), /invalid io\.prometheus\.write\.v2\.Request: /));
  });
});
