// Starts a real Wharf broker as a child process (`node src/cli/main.ts start`) for end-to-end
// tests: free ports picked here (the Kafka port is advertised in Metadata, so port 0 is not an
// option), a temporary data directory, stdout/stderr kept in a bounded buffer, and /readyz
// polled before the handle is returned. Tests call `printBrokerLogsOnFailure()` once per file
// so that a failing test shows what the broker said. inProcessBrokerConfig() is the config of a
// broker a test runs in its own process instead (`new Broker(config)`).

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach } from 'vitest';
import { BROKER_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { defaultConfig, type WharfConfig } from '../../src/config/config.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const CLI_PATH = join(REPO_ROOT, 'src', 'cli', 'main.ts');

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024;
const LOG_TAIL_LINES_ON_FAILURE = 200;

export interface StartBrokerOptions {
  /** Reuse this data directory (it is then not removed by stop()). Default: a new temp dir. */
  dataDir?: string;
  /** Extra WHARF_* (or other) environment variables; they override the test defaults. */
  env?: Record<string, string>;
  /** Name shown in logs and failure messages. */
  name?: string;
}

export interface Broker {
  readonly name: string;
  readonly kafkaPort: number;
  readonly httpPort: number;
  /** OTLP/gRPC and OTLP/HTTP ports (free ports, never 4317/4318). */
  readonly otlpGrpcPort: number;
  readonly otlpHttpPort: number;
  /** `127.0.0.1:<kafkaPort>`, for bootstrap.servers / brokers. */
  readonly bootstrap: string;
  readonly httpUrl: string;
  readonly dataDir: string;
  /** Process id of the current broker process (changes on restart). */
  pid(): number | undefined;
  /** True while the current process has not exited. */
  isRunning(): boolean;
  /** Sends the signal (default SIGKILL) and waits for the process to exit. Keeps the data dir. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the broker again on the same data dir and ports (stopping it first with SIGTERM if it runs). */
  restart(opts?: { env?: Record<string, string> }): Promise<void>;
  /** SIGTERM (clean shutdown), SIGKILL after 20 s, then removes the data dir if this helper created it. */
  stop(): Promise<void>;
  /** Everything the broker wrote to stdout and stderr so far (the tail, bounded). */
  logs(): string;
  /** POST /admin/flush: upload all unuploaded data and trim the WAL. */
  flush(): Promise<void>;
  /** GET /metrics text. */
  metrics(): Promise<string>;
}

/** Brokers started by this test file; their logs are printed when a test fails. */
const startedBrokers = new Set<BrokerProcess>();
/** Every child still alive, killed if the test process exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a probe server'));
        return;
      }
      const port = address.port;
      server.close(() => resolvePort(port));
    });
  });
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * The defaults, on loopback with free Kafka and HTTP ports, a 64 MiB WAL and no group rebalance
 * delay, then `overrides`: for a broker run in the test's own process.
 */
export async function inProcessBrokerConfig(dataDir: string, overrides: Partial<WharfConfig> = {}): Promise<WharfConfig> {
  const [kafkaPort, httpPort] = await distinctFreePorts(2);
  return {
    ...defaultConfig(),
    dataDir,
    host: '127.0.0.1',
    kafkaPort: kafkaPort!,
    httpPort: httpPort!,
    walCapacityBytes: 64 * 1024 * 1024,
    groupInitialRebalanceDelayMs: 0,
    ...overrides,
  };
}

export async function startBroker(opts: StartBrokerOptions = {}): Promise<Broker> {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) {
    throw new Error(
      `the broker runs with this test process's Node (${process.execPath}, v${process.versions.node}), ` +
        'which is older than 24: run the tests through npm (`npm test`, `npx vitest`) so that the ' +
        "`node` package's Node 24 comes first on PATH",
    );
  }
  if (!existsSync(CLI_PATH)) {
    throw new Error(`the broker entry point ${CLI_PATH} does not exist (the broker is not built yet?)`);
  }
  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'wharf-test-')));
  const [kafkaPort, httpPort, otlpGrpcPort, otlpHttpPort] = await distinctFreePorts(4);
  const broker = new BrokerProcess({
    name: opts.name ?? `broker-${startedBrokers.size + 1}`,
    kafkaPort: kafkaPort!,
    httpPort: httpPort!,
    otlpGrpcPort: otlpGrpcPort!,
    otlpHttpPort: otlpHttpPort!,
    dataDir,
    ownsDataDir,
    env: opts.env ?? {},
  });
  startedBrokers.add(broker);
  try {
    await broker.spawnAndWaitReady();
  } catch (err) {
    await broker.stop();
    throw err;
  }
  return broker;
}

/**
 * Registers hooks for the calling test file: when a test fails, print the log tail of every
 * broker started in this file; after the file, stop any broker a test forgot to stop.
 */
export function printBrokerLogsOnFailure(): void {
  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    for (const broker of startedBrokers) {
      const lines = broker.logs().split('\n');
      const tail = lines.slice(-LOG_TAIL_LINES_ON_FAILURE).join('\n');
      console.error(
        `\n----- ${broker.name} (kafka ${broker.bootstrap}, http ${broker.httpPort}, data ${broker.dataDir}): ` +
          `last ${Math.min(lines.length, LOG_TAIL_LINES_ON_FAILURE)} log lines -----\n${tail}\n----- end of ${broker.name} logs -----`,
      );
    }
  });
  afterAll(async () => {
    for (const broker of startedBrokers) await broker.stop();
    startedBrokers.clear();
  });
}

interface BrokerProcessConfig {
  name: string;
  kafkaPort: number;
  httpPort: number;
  otlpGrpcPort: number;
  otlpHttpPort: number;
  dataDir: string;
  ownsDataDir: boolean;
  env: Record<string, string>;
}

class BrokerProcess implements Broker {
  readonly name: string;
  readonly kafkaPort: number;
  readonly httpPort: number;
  readonly otlpGrpcPort: number;
  readonly otlpHttpPort: number;
  readonly bootstrap: string;
  readonly httpUrl: string;
  readonly dataDir: string;
  private readonly ownsDataDir: boolean;
  private env: Record<string, string>;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exitDescription: string | undefined;
  private logChunks: string[] = [];
  private logBytes = 0;
  private removed = false;

  constructor(config: BrokerProcessConfig) {
    this.name = config.name;
    this.kafkaPort = config.kafkaPort;
    this.httpPort = config.httpPort;
    this.otlpGrpcPort = config.otlpGrpcPort;
    this.otlpHttpPort = config.otlpHttpPort;
    this.bootstrap = `127.0.0.1:${config.kafkaPort}`;
    this.httpUrl = `http://127.0.0.1:${config.httpPort}`;
    this.dataDir = config.dataDir;
    this.ownsDataDir = config.ownsDataDir;
    this.env = config.env;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  isRunning(): boolean {
    return this.child !== undefined && this.exitDescription === undefined;
  }

  logs(): string {
    return this.logChunks.join('');
  }

  private appendLog(text: string): void {
    this.logChunks.push(text);
    this.logBytes += text.length;
    while (this.logBytes > LOG_BUFFER_MAX_BYTES && this.logChunks.length > 1) {
      this.logBytes -= this.logChunks.shift()!.length;
    }
  }

  private childEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      // A developer's own WHARF_* settings must not leak into tests.
      if (!key.startsWith('WHARF_')) env[key] = value;
    }
    return {
      ...env,
      WHARF_DATA_DIR: this.dataDir,
      WHARF_KAFKA_PORT: String(this.kafkaPort),
      WHARF_HTTP_PORT: String(this.httpPort),
      WHARF_OTLP_GRPC_PORT: String(this.otlpGrpcPort),
      WHARF_OTLP_HTTP_PORT: String(this.otlpHttpPort),
      WHARF_HOST: '127.0.0.1',
      // No configuration file: a wharf.yaml in the repository must not change what tests run.
      WHARF_CONFIG: '',
      WHARF_AUTO_CREATE_TOPICS: 'true',
      WHARF_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      ...this.env,
    };
  }

  async spawnAndWaitReady(): Promise<void> {
    this.appendLog(`=== ${new Date().toISOString()} starting ${this.name} (data ${this.dataDir}) ===\n`);
    const child = spawn(process.execPath, [...BROKER_NODE_FLAGS, CLI_PATH, 'start'], {
      cwd: REPO_ROOT,
      env: this.childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitDescription = undefined;
    liveChildren.add(child);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => this.appendLog(text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => this.appendLog(text));
    this.exited = new Promise((resolveExit) => {
      const onGone = (description: string) => {
        if (this.child === child && this.exitDescription === undefined) this.exitDescription = description;
        liveChildren.delete(child);
        this.appendLog(`=== ${new Date().toISOString()} ${this.name} ${description} ===\n`);
        resolveExit();
      };
      child.once('error', (err) => onGone(`failed to spawn: ${err.message}`));
      child.once('exit', (code, signal) => onGone(signal ? `killed by ${signal}` : `exited with code ${code}`));
    });
    await this.waitReady(child);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastProblem = 'no answer yet';
    while (Date.now() < deadline) {
      if (this.child !== child || this.exitDescription !== undefined) {
        throw new Error(
          `${this.name} ${this.exitDescription ?? 'went away'} before /readyz answered 200.\n` +
            `Broker output:\n${tailLines(this.logs(), 80)}`,
        );
      }
      try {
        const response = await fetch(`${this.httpUrl}/readyz`, { signal: AbortSignal.timeout(1_000) });
        await response.arrayBuffer();
        if (response.status === 200) return;
        lastProblem = `/readyz answered ${response.status}`;
      } catch (err) {
        lastProblem = `/readyz: ${(err as Error).message}`;
      }
      await sleep(100);
    }
    throw new Error(
      `${this.name} was not ready within ${READY_TIMEOUT_MS / 1000} s (${lastProblem}).\n` +
        `Broker output:\n${tailLines(this.logs(), 80)}`,
    );
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === undefined || this.exitDescription !== undefined) return;
    child.kill(signal);
    await this.exited;
  }

  async restart(opts: { env?: Record<string, string> } = {}): Promise<void> {
    if (this.removed) throw new Error(`${this.name}: cannot restart after stop() removed its data dir`);
    if (this.isRunning()) await this.terminate();
    if (opts.env) this.env = { ...this.env, ...opts.env };
    await this.spawnAndWaitReady();
  }

  /** SIGTERM, then SIGKILL if the clean shutdown takes longer than STOP_TIMEOUT_MS. */
  private async terminate(): Promise<void> {
    const child = this.child;
    if (child === undefined || this.exitDescription !== undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.appendLog(`=== ${this.name} did not exit ${STOP_TIMEOUT_MS / 1000} s after SIGTERM: SIGKILL ===\n`);
      child.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.terminate();
    if (this.ownsDataDir && !this.removed) {
      this.removed = true;
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }

  async flush(): Promise<void> {
    const response = await fetch(`${this.httpUrl}/admin/flush`, {
      method: 'POST',
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`${this.name}: POST /admin/flush answered ${response.status}: ${text.slice(0, 500)}`);
    }
  }

  async metrics(): Promise<string> {
    const response = await fetch(`${this.httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${this.name}: GET /metrics answered ${response.status}`);
    return text;
  }
}

/** GET /readyz once: true when the broker answers 200. */
export async function isReady(broker: Broker): Promise<boolean> {
  try {
    const response = await fetch(`${broker.httpUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

function tailLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join('\n');
}
