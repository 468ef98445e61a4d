// V8 flags a broker process runs with (like Kafka's -Xms): `npm start`, the test harness and the
// benchmark all start the broker with them. Produced data lives in Buffers whose backing stores
// V8 counts as external memory; with V8's small default heap that triggers a mark-compact every
// few hundred milliseconds under load (each a 10-40 ms pause on the produce path). A larger
// initial heap lets the heap settle at its working size: at 20 MiB/s, 28 mark-compacts in 13 s
// became 2.
//
// The remaining ones came from V8's fixed external-memory trigger: every ~64 MB of new Buffers
// started a mark-compact (one every 2.5-3 s at 20 MiB/s, a 9-10 ms pause plus incremental steps
// of up to 24 ms), however little of it stayed alive. --external-memory-accounted-in-global-limit
// counts Buffers in the heap's global limit instead, which grows with the live heap as the old
// generation's does: at 20 MiB/s, 5 mark-compacts in 15 s became none and the produce p99 went
// from 26-31 ms to 10-11 ms; the peak RSS at full produce speed stayed at 806 MiB (809 before).
export const BROKER_NODE_FLAGS: readonly string[] = ['--initial-heap-size=256', '--external-memory-accounted-in-global-limit'];
