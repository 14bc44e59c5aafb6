/**
 * The Debian package, as an operator gets it. scripts/package-deb.sh builds it from the built
 * tree; lintian finds nothing wrong; it holds what README.md says; and in a clean Debian 12
 * root made with debootstrap (test/package/debian-root.sh, no network once cached)
 * `apt install ./moat_VERSION_all.deb` pulls in Debian's Node.js 18, moat runs there as it does
 * here, `man moat` works, and remove and purge do what README.md promises.
 *
 * CI installs it on Debian 12 only, the oldest Node.js moat supports. MOAT_TEST_DEB_SUITES
 * (default "bookworm") adds Debian 13: "bookworm trixie" (its root costs about 5 minutes once,
 * then a minute and a half per run).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, assertBuilt } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const EXAMPLE = 'examples/host-only-port/firewall.yaml';
const SNAPSHOT = 'examples/snapshot-docker-20.10';

const scratch = mkdtempSync(join(tmpdir(), 'moat-deb-test-'));
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

let built: string | undefined;
/** The .deb, built once per test file. */
function packageDeb(): string {
  if (built !== undefined) return built;
  assertBuilt();
  const result = spawnSync('bash', ['scripts/package-deb.sh', join(scratch, 'out')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (result.status !== 0) throw new Error(`package-deb.sh failed:\n${result.stderr}`);
  built = result.stdout.trim();
  return built;
}

/** `moat ARGS` as this repository runs it, here, on this machine's Node.js. */
function moatHere(args: readonly string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
}

describeWith(['dpkg-deb', 'lintian'], 'the Debian package', () => {
  let deb = '';
  let tree = '';
  beforeAll(() => {
    deb = packageDeb();
    tree = join(scratch, 'tree');
    execFileSync('dpkg-deb', ['-x', deb, tree]);
  }, 300_000);

  const field = (name: string): string =>
    execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();

  test('is named and described as Debian expects', () => {
    expect(deb).toMatch(new RegExp(`/moat_${VERSION.replaceAll('.', '\\.')}_all\\.deb$`));
    expect(field('Package')).toBe('moat');
    expect(field('Version')).toBe(VERSION);
    expect(field('Architecture')).toBe('all');
    expect(field('Depends')).toBe('nodejs (>= 18.19), iptables, ipset');
    expect(field('Recommends')).toBe('docker.io | docker-ce');
  });

  test('lintian reports no error and no warning', () => {
    const result = spawnSync('lintian', ['--pedantic', '--info', deb], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    const tags = result.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
    expect(tags).toEqual([]);
    // lintian exits 0 only when it ran and found no error.
    expect({ status: result.status, error: result.error }).toEqual({ status: 0, error: undefined });
  });

  test('holds the program, its documentation, the units and the policy where README.md says', () => {
    for (const path of [
      'usr/lib/moat/bin/moat',
      'usr/lib/moat/dist/bundle/main.js',
      'usr/lib/moat/package.json',
      'usr/share/moat/firewall.schema.json',
      'usr/share/man/man1/moat.1.gz',
      'usr/share/bash-completion/completions/moat',
      'usr/share/zsh/vendor-completions/_moat',
      'lib/systemd/system/moat-apply.service',
      'lib/systemd/system/moat-apply.timer',
      'lib/systemd/system/moat-boot.service',
      'lib/systemd/system/moat-watch.service',
      'etc/moat/firewall.yaml',
      'var/lib/moat',
      'usr/share/doc/moat/copyright',
      'usr/share/doc/moat/changelog.gz',
      `usr/share/doc/moat/${EXAMPLE}`,
      `usr/share/doc/moat/${SNAPSHOT}/iptables-save.txt`,
    ]) {
      expect({ path, exists: existsSync(join(tree, path)) }).toEqual({ path, exists: true });
    }
    const listing = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
    expect(listing).toMatch(/ \.\/usr\/bin\/moat -> \.\.\/lib\/moat\/bin\/moat$/m);
    // Installed, not enabled: no links into /etc/systemd.
    expect(listing).not.toMatch(/\.\/etc\/systemd/);
    const conffiles = execFileSync('sh', ['-c', `dpkg-deb --info "$1" conffiles`, 'sh', deb], {
      encoding: 'utf8',
    });
    expect(conffiles.trim()).toBe('/etc/moat/firewall.yaml');
  });

  test('the units run /usr/bin/moat on /etc/moat/firewall.yaml', () => {
    for (const unit of ['moat-apply.service', 'moat-boot.service', 'moat-watch.service']) {
      const text = readFileSync(join(tree, 'lib/systemd/system', unit), 'utf8');
      expect(text).toMatch(
        /^ExecStart=\/usr\/bin\/moat (apply|watch) --file \/etc\/moat\/firewall\.yaml /m,
      );
      expect(text).not.toContain('/usr/local/bin');
    }
  });

  test('the man page and completions are the ones generated from the CLI', () => {
    const fresh = join(scratch, 'cli-docs');
    execFileSync(process.execPath, ['scripts/gen-cli-docs.mjs', fresh], { cwd: ROOT });
    const man = execFileSync('gzip', ['-dc', join(tree, 'usr/share/man/man1/moat.1.gz')], {
      encoding: 'utf8',
    });
    const date = /^\.TH \S+ 1 (\S+)/m.exec(man)?.[1] ?? '';
    expect(man).toBe(
      readFileSync(join(fresh, 'moat.1'), 'utf8').replace(/^(\.TH \S+ 1) \S+/m, `$1 ${date}`),
    );
    expect(readFileSync(join(tree, 'usr/share/bash-completion/completions/moat'), 'utf8')).toBe(
      readFileSync(join(fresh, 'moat.bash'), 'utf8'),
    );
    expect(readFileSync(join(tree, 'usr/share/zsh/vendor-completions/_moat'), 'utf8')).toBe(
      readFileSync(join(fresh, '_moat'), 'utf8'),
    );
  });

  test('the installed program needs nothing but Node.js: no node_modules beside it', () => {
    const run = (args: readonly string[]): string =>
      execFileSync(process.execPath, [join(tree, 'usr/lib/moat/bin/moat'), ...args], {
        cwd: join(tree, 'usr/share/doc/moat'),
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', NODE_PATH: '' },
      });
    expect(run(['--version']).trim()).toBe(VERSION);
    expect(run(['plan', '-f', EXAMPLE, '--snapshot', SNAPSHOT])).toBe(
      moatHere(['plan', '-f', EXAMPLE, '--snapshot', SNAPSHOT]),
    );
  });

  test('the copyright file credits every npm package in the bundle', () => {
    const copyright = readFileSync(join(tree, 'usr/share/doc/moat/copyright'), 'utf8');
    const meta = JSON.parse(readFileSync(join(ROOT, 'dist/bundle-meta.json'), 'utf8')) as {
      inputs: Record<string, unknown>;
    };
    const packages = new Set(
      Object.keys(meta.inputs).flatMap(
        (i) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(i)?.[1] ?? [],
      ),
    );
    expect([...packages]).toEqual(expect.arrayContaining(['commander', 'yaml', 'ipaddr.js']));
    for (const name of packages) expect(copyright).toMatch(new RegExp(`^Comment: ${name} `, 'm'));
  });
});

/** What test/package/scenario.sh recorded for one step. */
interface Step {
  rc: number;
  out: string;
  err: string;
}

/** The Debian releases to install on, and the Node.js each ships. */
const SUITES: Record<string, { release: string; node: RegExp }> = {
  bookworm: { release: 'Debian 12', node: /^v18\.(19|[2-9]\d)\.\d+\n$/ },
  trixie: { release: 'Debian 13', node: /^v20\.\d+\.\d+\n$/ },
};
const suites = (process.env.MOAT_TEST_DEB_SUITES ?? 'bookworm').split(/\s+/).filter((s) => s);

describe.each(suites)('on %s', (suite) => {
  const expected = SUITES[suite];
  if (expected === undefined) throw new Error(`MOAT_TEST_DEB_SUITES: unknown suite ${suite}`);
  installedIn(suite, expected);
});

function installedIn(suite: string, expected: { release: string; node: RegExp }): void {
  describeWith(
    ['root', 'dpkg-deb', 'debootstrap'],
    `installed in a clean ${expected.release} root`,
    () => {
      const out = join(scratch, suite);
      let log = '';
      const step = (name: string): Step => {
        const read = (ext: string): string => {
          const path = join(out, `${name}.${ext}`);
          return existsSync(path) ? readFileSync(path, 'utf8') : '';
        };
        return { rc: Number(read('rc') || 'NaN'), out: read('out'), err: read('err') };
      };
      const ok = (name: string): string => {
        const s = step(name);
        expect({ name, rc: s.rc, err: s.rc === 0 ? '' : s.err }).toEqual({ name, rc: 0, err: '' });
        return s.out;
      };

      beforeAll(() => {
        const result = spawnSync(
          'bash',
          ['test/package/debian-root.sh', suite, packageDeb(), out],
          { cwd: ROOT, encoding: 'utf8', timeout: 1_200_000 },
        );
        log = `${result.stdout}${result.stderr}`;
        if (result.status !== 0)
          throw new Error(`debian-root.sh failed (${result.status}):\n${log}`);
      }, 1_260_000);

      test("apt install ./moat_VERSION_all.deb pulls in Debian's nodejs, iptables and ipset", () => {
        const install = ok('install');
        for (const dep of ['nodejs', 'iptables', 'ipset', 'moat']) {
          expect(install).toMatch(new RegExp(`^Setting up ${dep.replace('.', '\\.')} `, 'm'));
        }
        expect(ok('status')).toBe(`ii ${VERSION}`);
        expect(ok('conffiles')).toMatch(/^ \/etc\/moat\/firewall\.yaml [0-9a-f]{32}$/);
      });

      test(`moat runs on ${expected.release}'s Node.js, from /usr/bin/moat`, () => {
        expect(ok('node-version')).toMatch(expected.node);
        expect(ok('moat-path')).toBe('/usr/lib/moat/bin/moat\n');
        expect(ok('version')).toBe(`${VERSION}\n`);
        expect(ok('help')).toBe(moatHere(['--help']));
      });

      test('validate and plan --snapshot give what they give here', () => {
        expect(ok('validate-etc')).toBe('/etc/moat/firewall.yaml is valid.\n');
        expect(ok('validate-example')).toBe(`/usr/share/doc/moat/${EXAMPLE} is valid.\n`);
        expect(ok('plan-example')).toBe(moatHere(['plan', '-f', EXAMPLE, '--snapshot', SNAPSHOT]));
        expect(ok('plan-example')).toMatch(/^Plan: \d+ to add, 0 to change, 0 to destroy\.$/m);
        // The installed policy names no container: nothing to do on a host moat never touched.
        expect(ok('plan-etc')).toMatch(/^No changes\. The host matches firewall\.yaml\.$/m);
      });

      test('man moat and the bash completion work', () => {
        const man = ok('man');
        expect(man).toMatch(/^MOAT\(1\) +User Commands +MOAT\(1\)$/m);
        for (const command of [
          'validate',
          'plan',
          'apply',
          'watch',
          'status',
          'init',
          'show',
          'snapshot',
        ]) {
          expect(man).toMatch(new RegExp(`^ {7}moat ${command} \\[options\\]`, 'm'));
        }
        expect(ok('bash-completion')).toBe('auto nft legacy\n');
      });

      test('the systemd units are installed and none is enabled', () => {
        expect(ok('units').trim().split('\n')).toEqual([
          '/lib/systemd/system/moat-apply.service',
          '/lib/systemd/system/moat-apply.timer',
          '/lib/systemd/system/moat-boot.service',
          '/lib/systemd/system/moat-watch.service',
        ]);
        expect(ok('enabled')).toBe('');
      });

      test('apt remove keeps the edited policy, the run records and the enabled timer', () => {
        ok('remove');
        expect(ok('status-removed')).toBe('rc ');
        expect(ok('policy-removed')).toBe(readFileSync(join(out, 'edited-policy.yaml'), 'utf8'));
        expect(ok('leftovers-removed').trim().split('\n')).toEqual([
          '/etc/moat/firewall.yaml',
          '/var/lib/moat',
        ]);
        expect(ok('state-removed')).toBe('runs.json\n');
        expect(ok('enabled-removed')).toBe(
          '/etc/systemd/system/timers.target.wants/moat-apply.timer\n',
        );
      });

      test('installing again keeps the edited policy, without a question', () => {
        ok('reinstall');
        expect(ok('policy-reinstalled')).toBe(
          readFileSync(join(out, 'edited-policy.yaml'), 'utf8'),
        );
        expect(ok('version-reinstalled')).toBe(`${VERSION}\n`);
      });

      test('apt purge --autoremove removes everything it installed, and only that', () => {
        ok('purge');
        const gone = step('status-purged');
        expect(gone.rc).toBe(1);
        expect(gone.err).toMatch(/no packages found matching moat/);
        expect(ok('leftovers-purged')).toBe('');
        expect(ok('enabled-purged')).toBe('');
        // The administrator's own file in /etc/moat stays; the packaged policy is gone.
        expect(ok('etc-purged')).toBe('staging.yaml\n');
        expect(ok('packages-after')).toBe(ok('packages-before'));
      });
    },
  );
}
