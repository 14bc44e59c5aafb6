/**
 * Mistakes people make often get a message that says what was likely meant, not only what is
 * expected: Docker's `-p HOST:CONTAINER` written as a port, an IPv6 zone id, a file of comments.
 * Both readers (the quick one and the located one) must say the same.
 */
import { describe, expect, test } from '@jest/globals';
import { parsePolicy } from '../../src/policy/parse.js';

function errors(text: string): string[] {
  return parsePolicy(text, 'firewall.yaml').diagnostics.map(
    (d) => `${d.line}:${d.column} ${d.code} ${d.message}`,
  );
}

const INGRESS = (ports: string, from = '[host]'): string =>
  `version: 1\ncontainers:\n  web:\n    ingress:\n      - ports: ${ports}\n        from: ${from}\n`;

describe('likely mistakes', () => {
  test('`80:8080` says which side is the host port and what to write', () => {
    expect(errors(INGRESS('[80:8080]'))).toEqual([
      "5:17 schema `80:8080` is Docker's `-p HOST:CONTAINER` form: 80 is the host port, 8080 the container's. A rule names the published host port: write `80`",
    ]);
    expect(errors(INGRESS('[127.0.0.1:8443:443/tcp]'))[0]).toContain(
      "8443 is the host port, 443 the container's. A rule names the published host port: write `8443/tcp`",
    );
  });

  test('an egress port in that form gets the usual message (there is no host port)', () => {
    const text =
      'version: 1\ncontainers:\n  web:\n    egress:\n      allow:\n        - to: [192.0.2.0/24]\n          ports: [80:8080]\n';
    expect(errors(text).join('\n')).toContain('expected a port like 2368');
    expect(errors(text).join('\n')).not.toContain('HOST:CONTAINER');
  });

  test('an IPv6 zone id is refused in words, with the address to write', () => {
    expect(errors(INGRESS('[80]', '[fe80::1%eth0]'))).toEqual([
      '6:16 schema `fe80::1%eth0` has a zone id (`%eth0`), which firewall rules and ipsets do not take: write `fe80::1`',
    ]);
    const set = 'version: 1\nipsets:\n  lan:\n    entries: ["fe80::%eth0/64"]\ncontainers: {}\n';
    expect(errors(set)[0]).toContain('write `fe80::/64`');
  });

  test('a file of comments is not "empty"', () => {
    expect(errors('# firewall.yaml\n# to do\n')).toEqual([
      '1:1 empty the file holds only comments; a policy starts with `version: 1`',
    ]);
    expect(errors('\n  \n')).toEqual([
      '1:1 empty the file is empty; a policy starts with `version: 1`',
    ]);
  });
});
