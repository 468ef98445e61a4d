// Runs before the test suite (`npm test`): the end-to-end tests drive the broker with real
// Kafka clients from Debian: kcat and confluent-kafka-python (only importable by
// /usr/bin/python3). When they are missing, install them as root, or stop at once with the
// exact command to run.

import { spawnSync } from 'node:child_process';

const PACKAGES = ['kcat', 'python3-confluent-kafka'];
const MIN_NODE_MAJOR = 24;

interface Requirement {
  what: string;
  check: () => boolean;
}

const requirements: Requirement[] = [
  {
    what: 'kcat on PATH',
    check: () => spawnSync('kcat', ['-V'], { stdio: 'ignore' }).status === 0,
  },
  {
    what: 'confluent_kafka importable by /usr/bin/python3',
    check: () => spawnSync('/usr/bin/python3', ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0,
  },
];

function missing(): string[] {
  return requirements.filter((r) => !r.check()).map((r) => r.what);
}

function run(command: string, args: string[]): void {
  console.log(`preflight: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.status !== 0) {
    console.error(`preflight: \`${command} ${args.join(' ')}\` failed (${result.error?.message ?? `exit code ${result.status}`})`);
    process.exit(1);
  }
}

const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < MIN_NODE_MAJOR) {
  console.error(
    `preflight: this is Node ${process.versions.node} (${process.execPath}); Wharf runs on Node ${MIN_NODE_MAJOR}, ` +
      'which `npm ci` installs from the `node` package. Run `npm ci`, then `npm test`.',
  );
  process.exit(1);
}

let absent = missing();
if (absent.length > 0) {
  const installCommand = `apt-get install -y ${PACKAGES.join(' ')}`;
  if (process.getuid?.() === 0) {
    console.log(`preflight: missing ${absent.join(', ')}; installing ${PACKAGES.join(', ')}`);
    run('apt-get', ['update']);
    run('apt-get', ['install', '-y', ...PACKAGES]);
    absent = missing();
    if (absent.length > 0) {
      console.error(`preflight: still missing after \`${installCommand}\`: ${absent.join(', ')}`);
      process.exit(1);
    }
  } else {
    console.error(`preflight: the tests need ${absent.join(' and ')}. Install them with:\n\n  sudo ${installCommand}\n`);
    process.exit(1);
  }
}
console.log('preflight: kcat and confluent-kafka-python are present');
