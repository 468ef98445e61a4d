// Remote write 1.0 decoding: a prometheus.WriteRequest (built with protobufjs from the repo's
// .proto) becomes one record per series whose value is a WriteRequest holding just that series,
// keyed by the series identity; every malformed request is refused as a whole with a message.

import { describe, expect, it } from 'vitest';
import { InvalidWriteError } from '../../../connectors/prometheus/decoded-write.ts';
import { decodeWriteRequestV1 } from '../../../connectors/prometheus/remote-write-v1.ts';
import {
  decodeWriteRequest, encodeRequestV2, encodeWriteRequest, labels, seriesKey,
  type TimeSeriesObject,
} from '../../helpers/prometheus.ts';

const T0 = 1_700_000_000_000;

const intHistogram = {
  count_int: 7, sum: 12.5, schema: 1, zero_threshold: 0.001, zero_count_int: 1,
  negative_spans: [{ offset: 0, length: 1 }], negative_deltas: [2],
  positive_spans: [{ offset: -1, length: 2 }, { offset: 3, length: 1 }], positive_deltas: [1, 1, -1],
  reset_hint: 2, timestamp: T0,
};

const floatHistogram = {
  count_float: 4.5, sum: 3.25, schema: 0, zero_threshold: 0.001, zero_count_float: 0.5,
  positive_spans: [{ offset: 0, length: 2 }], positive_counts: [1.5, 2.5], reset_hint: 3, timestamp: T0 + 1,
};

const upSeries: TimeSeriesObject = {
  labels: labels({ __name__: 'up', instance: '127.0.0.1:9090', job: 'prometheus' }),
  samples: [{ value: 1, timestamp: T0 }, { value: 0, timestamp: T0 + 1000 }],
};
const latencySeries: TimeSeriesObject = {
  labels: labels({ __name__: 'http_request_duration_seconds', Zone: 'eu-1', method: 'GET', path: '/a"b\\c\nd' }),
  histograms: [intHistogram, floatHistogram],
  exemplars: [{ labels: labels({ trace_id: 'abc123' }), value: 0.25, timestamp: T0 }],
};
const dottedSeries: TimeSeriesObject = {
  labels: labels({ __name__: 'otel.requests', 'service.name': 'checkout', job: 'otel' }),
  samples: [{ value: -2.5, timestamp: '-5' }],
};

function decodeOne(value: Buffer | null) {
  return decodeWriteRequest(value!);
}

function expectRejected(body: Buffer, status: number, message: RegExp): void {
  let thrown: unknown;
  try {
    decodeWriteRequestV1(body);
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'the request is rejected').toBeInstanceOf(InvalidWriteError);
  expect((thrown as InvalidWriteError).status).toBe(status);
  expect((thrown as InvalidWriteError).message).toMatch(message);
}

describe('remote write 1.0 decoding', () => {
  it('writes one record per series: key = series identity, value = a WriteRequest with just that series', () => {
    const input = [upSeries, latencySeries, dottedSeries];
    const decoded = decodeWriteRequestV1(encodeWriteRequest({ timeseries: input }));
    expect(decoded.records).toHaveLength(3);
    expect(decoded.series).toBe(3);
    expect({ samples: decoded.samples, histograms: decoded.histograms, exemplars: decoded.exemplars })
      .toEqual({ samples: 3, histograms: 2, exemplars: 1 });
    input.forEach((series, i) => {
      const record = decoded.records[i]!;
      expect(record.key!.toString('utf8')).toBe(seriesKey(series.labels));
      expect(decodeOne(record.value)).toEqual(decodeWriteRequest(encodeWriteRequest({ timeseries: [series] })));
    });
  });

  it('writes keys in the documented format, escapes included', () => {
    const decoded = decodeWriteRequestV1(encodeWriteRequest({ timeseries: [upSeries, latencySeries, dottedSeries] }));
    expect(decoded.records.map((r) => r.key!.toString('utf8'))).toEqual([
      'up{instance="127.0.0.1:9090",job="prometheus"}',
      'http_request_duration_seconds{Zone="eu-1",method="GET",path="/a\\"b\\\\c\\nd"}',
      '{"otel.requests",job="otel","service.name"="checkout"}',
    ]);
  });

  it('keeps native histograms (integer and float) and exemplars exactly', () => {
    const decoded = decodeWriteRequestV1(encodeWriteRequest({ timeseries: [latencySeries] }));
    const series = decodeOne(decoded.records[0]!.value).timeseries[0]!;
    expect(series.histograms[0]).toMatchObject({ count_int: '7', sum: 12.5, schema: 1, zero_count_int: '1', positive_deltas: ['1', '1', '-1'], negative_deltas: ['2'], reset_hint: 2 });
    expect(series.histograms[0]!.positive_spans).toEqual([{ offset: -1, length: 2 }, { offset: 3, length: 1 }]);
    expect(series.histograms[1]).toMatchObject({ count_float: 4.5, zero_count_float: 0.5, positive_counts: [1.5, 2.5], reset_hint: 3 });
    expect(series.exemplars).toEqual([{ labels: [{ name: 'trace_id', value: 'abc123' }], value: 0.25, timestamp: String(T0) }]);
  });

  it('hands out record values as views of the request buffer, not copies', () => {
    const body = encodeWriteRequest({ timeseries: [upSeries, dottedSeries] });
    const decoded = decodeWriteRequestV1(body);
    for (const record of decoded.records) expect(record.value!.buffer).toBe(body.buffer);
  });

  it('merges the entries of one series (Prometheus sends each sample, and exemplars, on their own)', () => {
    const name = labels({ __name__: 'requests_total', job: 'api' });
    const body = encodeWriteRequest({
      timeseries: [
        { labels: name, samples: [{ value: 1, timestamp: T0 }] },
        upSeries,
        { labels: name, samples: [{ value: 2, timestamp: T0 + 15_000 }] },
        { labels: name, exemplars: [{ labels: labels({ trace_id: 'f00' }), value: 1, timestamp: T0 + 15_000 }] },
      ],
    });
    const decoded = decodeWriteRequestV1(body);
    expect(decoded.records.map((r) => r.key!.toString())).toEqual(['requests_total{job="api"}', seriesKey(upSeries.labels)]);
    expect(decoded.samples).toBe(4);
    const merged = decodeOne(decoded.records[0]!.value);
    expect(merged.timeseries).toHaveLength(1);
    expect(merged.timeseries[0]!.labels).toEqual(name);
    expect(merged.timeseries[0]!.samples).toEqual([{ value: 1, timestamp: String(T0) }, { value: 2, timestamp: String(T0 + 15_000) }]);
    expect(merged.timeseries[0]!.exemplars).toHaveLength(1);
  });

  it('writes each metadata family as a record keyed "#<family>" holding a WriteRequest with only that metadata', () => {
    const metadata = [
      { type: 1, metric_family_name: 'requests_total', help: 'Requests.', unit: '' },
      { type: 2, metric_family_name: 'temperature', help: 'Degrees.', unit: 'celsius' },
    ];
    const decoded = decodeWriteRequestV1(encodeWriteRequest({ timeseries: [upSeries], metadata }));
    expect(decoded.series).toBe(1);
    expect(decoded.records.map((r) => r.key!.toString())).toEqual([seriesKey(upSeries.labels), '#requests_total', '#temperature']);
    expect(decodeOne(decoded.records[2]!.value)).toEqual({ timeseries: [], metadata: [metadata[1]] });
  });

  it('decodes a request the same with and without the key cache (series already known), merging included', () => {
    const name = labels({ __name__: 'cached_total', job: 'c' });
    const body = encodeWriteRequest({
      timeseries: [upSeries, { labels: name, samples: [{ value: 1, timestamp: T0 }] }, dottedSeries, { labels: name, samples: [{ value: 2, timestamp: T0 + 1 }] }],
    });
    const first = decodeWriteRequestV1(body, null);
    decodeWriteRequestV1(body);
    const again = decodeWriteRequestV1(Buffer.from(body));
    expect(again.records.map((r) => r.key!.toString())).toEqual([seriesKey(upSeries.labels), 'cached_total{job="c"}', seriesKey(dottedSeries.labels)]);
    expect(again.records.map((r) => decodeOne(r.value))).toEqual(first.records.map((r) => decodeOne(r.value)));
    expect(decodeOne(again.records[1]!.value).timeseries[0]!.samples.map((s) => s.value)).toEqual([1, 2]);
  });

  it('finds the labels of a series whose label fields are not all in front', () => {
    // TimeSeries{labels: [__name__="up"], samples: [{}], labels: [job="x"]}, sent twice
    const series = Buffer.from([0x0a, 0x0e, 0x0a, 0x08, ...Buffer.from('__name__'), 0x12, 0x02, 0x75, 0x70, 0x12, 0x00, 0x0a, 0x08, 0x0a, 0x03, ...Buffer.from('job'), 0x12, 0x01, 0x78]);
    const entry = Buffer.concat([Buffer.from([0x0a, series.length]), series]);
    for (let i = 0; i < 2; i++) {
      const decoded = decodeWriteRequestV1(Buffer.concat([entry, entry]));
      expect(decoded.records.map((r) => r.key!.toString())).toEqual(['up{job="x"}']);
      expect(decoded.samples).toBe(2);
    }
  });

  it('accepts an empty request (no records)', () => {
    expect(decodeWriteRequestV1(Buffer.alloc(0)).records).toEqual([]);
  });

  describe('refuses the whole request, saying what is wrong', () => {
    const series = (record: Record<string, string>): Buffer =>
      encodeWriteRequest({ timeseries: [upSeries, { labels: labels(record), samples: [{ value: 1, timestamp: T0 }] }] });

    it('an empty label name', () => expectRejected(series({ __name__: 'x', '': 'v' }), 400, /timeseries\[1\].*label 0 has an empty name/));
    it('an empty label value', () => expectRejected(series({ __name__: 'x', job: '' }), 400, /label "job" has an empty value/));
    it('no __name__', () => expectRejected(series({ job: 'a' }), 400, /timeseries\[1\] \{job="a"\}: no __name__ label/));
    it('unsorted labels', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: [{ name: '__name__', value: 'x' }, { name: 'b', value: '1' }, { name: 'a', value: '2' }], samples: [] }] });
      expectRejected(body, 400, /labels are not sorted by name: "a" comes after "b"/);
    });
    it('duplicate label names', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: [{ name: '__name__', value: 'x' }, { name: 'a', value: '1' }, { name: 'a', value: '2' }] }] });
      expectRejected(body, 400, /duplicate label name "a"/);
    });
    it('a label that is not UTF-8', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: labels({ __name__: 'x', job: 'zz' }) }] });
      body[body.indexOf('zz')] = 0xff;
      expectRejected(body, 400, /label 1 is not valid UTF-8/);
    });
    it('truncated protobuf', () => {
      const body = encodeWriteRequest({ timeseries: [upSeries, latencySeries] });
      expectRejected(body.subarray(0, body.length - 3), 400, /invalid prometheus\.WriteRequest: length \d+ at byte \d+ runs past the end/);
    });
    it('a field with the wrong wire type', () => {
      expectRejected(Buffer.from([0x08, 0x01]), 400, /timeseries has wire type 0 at byte 0, expected 2/);
    });
    it('a sample value that is not a double', () => {
      // TimeSeries{labels: [__name__=x], samples: [{value: varint}]}
      const body = Buffer.from([0x0a, 0x13, 0x0a, 0x0d, 0x0a, 0x08, ...Buffer.from('__name__'), 0x12, 0x01, 0x78, 0x12, 0x02, 0x08, 0x01]);
      expectRejected(body, 400, /sample value has wire type 0 at byte \d+, expected 1/);
    });
    it('a histogram whose spans do not match its buckets', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: labels({ __name__: 'h' }), histograms: [{ ...intHistogram, positive_deltas: [1, 1] }] }] });
      expectRejected(body, 400, /timeseries\[0\]\.histograms\[\]: positive spans cover 3 buckets but 2 bucket counts are given/);
    });
    it('a histogram mixing integer deltas and float counts', () => {
      const body = encodeWriteRequest({ timeseries: [{ labels: labels({ __name__: 'h' }), histograms: [{ ...intHistogram, positive_counts: [1, 2, 3] }] }] });
      expectRejected(body, 400, /mixes integer bucket deltas and float bucket counts/);
    });
    it('a 2.0 Request sent as 1.0', () => {
      const body = encodeRequestV2({ symbols: ['', '__name__', 'up'], timeseries: [{ labels_refs: [1, 2], samples: [{ value: 1, timestamp: T0 }] }] });
      expectRejected(body, 400, /fields 4 and 5 of io\.prometheus\.write\.v2\.Request; send it with Content-Type: application\/x-protobuf;proto=io\.prometheus\.write\.v2\.Request/);
    });
    it('metadata without a family name', () => {
      expectRejected(encodeWriteRequest({ metadata: [{ type: 1, help: 'h' }] }), 400, /metadata\[0\] has an empty metric_family_name/);
    });
  });
});
