// Environment settings of a Wharf process that native code reads once, when first used: this
// module is imported before any other by the CLI. A value set in the environment wins.
//
// - UV_THREADPOOL_SIZE: libuv's thread pool runs every file-system call of the broker (WAL
//   writes, metadata fsyncs, reads of local objects by catch-up consumers, upload writes) and
//   zlib, snappy and DNS work. With libuv's default of 4 threads, a few catch-up reads or upload
//   writes in flight make a WAL write queue behind them, and the produce waits.
// - MIMALLOC_ALLOW_LARGE_OS_PAGES: the snappy package's allocator (mimalloc) otherwise maps and
//   zeroes fresh 2 MiB pages again and again: decompressing a 2 MB remote-write body measured
//   3–5 ms of CPU (mostly the kernel's) against 0.5–1 ms with it off.
process.env.UV_THREADPOOL_SIZE ??= '16';
process.env.MIMALLOC_ALLOW_LARGE_OS_PAGES ??= '0';
