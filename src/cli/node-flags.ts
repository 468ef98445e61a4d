// V8 flags a broker process runs with (like Kafka's -Xms): `npm start`, the test harness and the
// benchmark all start the broker with them. Produced data lives in Buffers whose backing stores
// V8 counts as external memory; with V8's small default heap that triggers a mark-compact every
// few hundred milliseconds under load (each a 10-40 ms pause on the produce path). A larger
// initial heap lets the heap settle at its working size: at 20 MiB/s, 28 mark-compacts in 13 s
// became 2.
export const BROKER_NODE_FLAGS: readonly string[] = ['--initial-heap-size=256'];
