// libuv's thread pool runs every file-system call of the broker: WAL writes, metadata fsyncs,
// reads of local objects by catch-up consumers, upload writes, and also zlib and DNS work. With
// libuv's default of 4 threads, a few catch-up reads or upload writes in flight make a WAL write
// queue behind them, and the produce waits. The pool is sized when first used, so this module is
// imported before any other by the CLI; UV_THREADPOOL_SIZE set in the environment wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
