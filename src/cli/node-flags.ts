// V8 flags a broker process runs with (like Kafka's -Xms): `npm start`, the test harness and the
// benchmark all start the broker with them. Produced data lives in Buffers whose backing stores
// V8 counts as external memory; with V8's small default heap that triggers a mark-compact every
// few hundred milliseconds under load (each a 10-40 ms pause on the produce path). A larger
// initial heap lets the heap settle at its working size: at 20 MiB/s, 28 mark-compacts in 13 s
// became 2.
//
// Measured and not taken: --external-memory-accounted-in-global-limit. It removes V8's fixed
// trigger (a mark-compact per ~64 MB of new Buffers: at 20 MiB/s one every ~3 s, a 4-9 ms pause
// plus incremental steps) and took the produce p99 at 20 MiB/s from 7-8 ms to 3.5-4.4 ms. But
// the limit it uses instead grows with the live heap, and the caches keep ~600 MB of Buffers
// live: under a catch-up read dead Buffers piled up to an RSS of 1,572 MiB (1,001 without), and
// the mark-compact that finally came took the tail produce p99 from 57 to 128 ms.
export const BROKER_NODE_FLAGS: readonly string[] = ['--initial-heap-size=256'];
