// Runs before the test suite (`npm test`): the end-to-end tests drive the broker with real
// Kafka clients from Debian: kcat and confluent-kafka-python (only importable by
// /usr/bin/python3), and remote-write tests run Debian's Prometheus server. When they are
// missing, install them as root, or stop at once with the exact command to run.

import { spawnSync } from 'node:child_process';

const PACKAGES = ['kcat', 'python3-confluent-kafka'];
/** Installed with --no-install-recommends (Prometheus would otherwise pull in node-exporter and more). */
const PACKAGES_WITHOUT_RECOMMENDS = ['prometheus'];
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
  {
    what: 'prometheus at /usr/bin/prometheus',
    check: () => spawnSync('/usr/bin/prometheus', ['--version'], { stdio: 'ignore' }).status === 0,
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

/**
 * Debian's package enables and starts a prometheus service on :9090; tests start their own on
 * free ports, so stop and disable it (best effort: containers often have no init system).
 */
function stopPackagedPrometheus(): void {
  for (const [command, args] of [
    ['systemctl', ['disable', '--now', 'prometheus']],
    ['update-rc.d', ['prometheus', 'disable']],
    ['service', ['prometheus', 'stop']],
  ] as const) {
    spawnSync(command, [...args], { stdio: 'ignore' });
  }
}

let absent = missing();
if (absent.length > 0) {
  const installCommands = [
    `apt-get install -y ${PACKAGES.join(' ')}`,
    `apt-get install -y --no-install-recommends ${PACKAGES_WITHOUT_RECOMMENDS.join(' ')}`,
  ];
  if (process.getuid?.() === 0) {
    console.log(`preflight: missing ${absent.join(', ')}; installing ${[...PACKAGES, ...PACKAGES_WITHOUT_RECOMMENDS].join(', ')}`);
    run('apt-get', ['update']);
    run('apt-get', ['install', '-y', ...PACKAGES]);
    run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES_WITHOUT_RECOMMENDS]);
    stopPackagedPrometheus();
    absent = missing();
    if (absent.length > 0) {
      console.error(`preflight: still missing after \`${installCommands.join(' && ')}\`: ${absent.join(', ')}`);
      process.exit(1);
    }
  } else {
    console.error(`preflight: the tests need ${absent.join(' and ')}. Install them with:\n\n  ${installCommands.map((c) => `sudo ${c}`).join(' && ')}\n`);
    process.exit(1);
  }
}
console.log('preflight: kcat, confluent-kafka-python and prometheus are present');
