// Client-side helpers for end-to-end tests: run kcat and /usr/bin/python3 (confluent-kafka)
// as child processes with timeouts, and make kafkajs clients that stay quiet.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaConfig } from 'kafkajs';
import { REPO_ROOT } from './broker.ts';

/** The Python that has confluent_kafka (Debian's python3-confluent-kafka); not the one on PATH. */
export const PYTHON = '/usr/bin/python3';
export const PYTHON_SCRIPTS_DIR = join(REPO_ROOT, 'test', 'helpers', 'python');

const OUTPUT_MAX_CHARS = 256 * 1024 * 1024;

export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Buffer;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Called for every stdout line; stdout is then not collected (for large outputs). */
  onStdoutLine?: (line: string) => void;
}

export interface RunResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export class ProcessError extends Error {
  declare readonly result: RunResult;
  constructor(message: string, result: RunResult) {
    super(message);
    this.name = 'ProcessError';
    // Not enumerable: test reporters print an error's enumerable fields, and stdout/stderr
    // can be megabytes (the message already carries their tails).
    Object.defineProperty(this, 'result', { value: result, enumerable: false });
  }
}

/** Every child still alive, killed if the test process exits without waiting for them. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export interface RunningProcess {
  readonly child: ChildProcess;
  readonly command: string;
  /** Resolves when the process has exited (never rejects; check code). */
  readonly done: Promise<RunResult>;
  /** stderr so far. */
  stderr(): string;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawns a process, feeds stdin, collects or streams stdout, kills it at the timeout. */
export function startProcess(file: string, args: string[], opts: RunOptions = {}): RunningProcess {
  const command = [file, ...args.map(shellQuote)].join(' ');
  const started = Date.now();
  const child = spawn(file, args, {
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdin!.on('error', () => {
    // EPIPE when the process exits before reading all of its input: the exit code tells.
  });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();

  let stdoutClosed: Promise<void>;
  if (opts.onStdoutLine) {
    const onLine = opts.onStdoutLine;
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    lines.on('line', onLine);
    stdoutClosed = new Promise((resolveClosed) => lines.once('close', () => resolveClosed()));
  } else {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      if (stdout.length < OUTPUT_MAX_CHARS) stdout += text;
    });
    stdoutClosed = new Promise((resolveClosed) => child.stdout!.once('close', () => resolveClosed()));
  }
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    if (stderr.length > 4 * 1024 * 1024) stderr = stderr.slice(-2 * 1024 * 1024);
  });

  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs);

  const done = new Promise<RunResult>((resolveDone) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (timer) clearTimeout(timer);
      liveChildren.delete(child);
      void stdoutClosed.then(() => {
        const result: RunResult = {
          command,
          code,
          signal,
          stdout,
          stderr: spawnError ? `${stderr}\nspawn failed: ${spawnError.message}` : stderr,
          durationMs: Date.now() - started,
        };
        if (timedOut) result.stderr += `\n[killed after the ${opts.timeoutMs} ms timeout]`;
        resolveDone(result);
      });
    };
    child.once('error', (err) => finish(null, null, err));
    child.once('exit', (code, signal) => finish(code, signal));
  });

  return {
    child,
    command,
    done,
    stderr: () => stderr,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

/** Runs a process to completion; throws a ProcessError (with its stderr) unless it exits 0. */
export async function runProcess(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await startProcess(file, args, opts).done;
  if (result.code !== 0) throw new ProcessError(describeFailure(result), result);
  return result;
}

export function describeFailure(result: RunResult): string {
  const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
  return (
    `${result.command} ${how} after ${result.durationMs} ms\n` +
    `--- stderr (tail) ---\n${result.stderr.slice(-8000)}\n` +
    (result.stdout ? `--- stdout (tail) ---\n${result.stdout.slice(-2000)}\n` : '')
  );
}

/** kcat with the given arguments (add -b yourself). */
export function runKcat(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess('kcat', args, { timeoutMs: 120_000, ...opts });
}

/** /usr/bin/python3 running a script from test/helpers/python/ with arguments. */
export function runPython(script: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(PYTHON, ['-u', join(PYTHON_SCRIPTS_DIR, script), ...args], { timeoutMs: 120_000, ...opts });
}

/** Like runPython but returns at once with a handle (for loads that run while the test acts). */
export function startPython(script: string, args: string[], opts: RunOptions = {}): RunningProcess {
  return startProcess(PYTHON, ['-u', join(PYTHON_SCRIPTS_DIR, script), ...args], opts);
}

/** One message as printed by test/helpers/python/consume_all.py. */
export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, Buffer | null]>;
}

interface ConsumedLine {
  t: string;
  p: number;
  o: number;
  k: string | null;
  v: string | null;
  h: Array<[string, string | null]> | null;
}

/**
 * Reads every message of the topics from the beginning to the end (as of when each partition
 * reaches its end) with confluent-kafka's Consumer, in partition order.
 */
export async function consumeAllWithPython(
  bootstrap: string,
  topics: string[],
  opts: { timeoutMs?: number } = {},
): Promise<ConsumedMessage[]> {
  const messages: ConsumedMessage[] = [];
  const timeoutMs = opts.timeoutMs ?? 120_000;
  await runPython(
    'consume_all.py',
    ['--bootstrap', bootstrap, '--timeout-s', String(Math.floor(timeoutMs / 1000) - 5), ...topics],
    {
      timeoutMs,
      onStdoutLine: (line) => {
        if (line.length === 0) return;
        const parsed = JSON.parse(line) as ConsumedLine;
        messages.push({
          topic: parsed.t,
          partition: parsed.p,
          offset: parsed.o,
          key: parsed.k === null ? null : Buffer.from(parsed.k, 'base64'),
          value: parsed.v === null ? null : Buffer.from(parsed.v, 'base64'),
          headers: (parsed.h ?? []).map(([name, value]) => [name, value === null ? null : Buffer.from(value, 'base64')]),
        });
      },
    },
  );
  return messages;
}

/** A kafkajs client that logs nothing (failures surface as thrown errors). */
export function kafkajsClient(bootstrap: string, config: Partial<KafkaConfig> = {}): Kafka {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
  return new Kafka({
    clientId: 'wharf-test',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2_000 },
    ...config,
  });
}

/** Polls `check` until it returns true; throws with `what` when the deadline passes. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 50));
  }
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
