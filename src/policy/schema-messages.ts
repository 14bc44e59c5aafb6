/** ajv's errors → issues a person can act on, located at the offending key or value. */
import { didYouMean } from '../core/suggest.js';
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { PathSegment } from './locate.js';
import { show, type PolicyIssue } from './issue.js';

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'nothing',
};

function describeFound(value: unknown): string {
  if (typeof value === 'string') return `the string ${show(value)}`;
  if (typeof value === 'number' && !Number.isInteger(value)) return `the number ${value}`;
  return show(value);
}

/** `/containers/ghost~1x/ingress/0` → ['containers', 'ghost/x', 'ingress', 0]. */
export function pointerToPath(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function lastKey(path: readonly PathSegment[]): string {
  for (let i = path.length - 1; i >= 0; i--) {
    const segment = path[i];
    if (typeof segment === 'string') return segment;
  }
  return 'the file';
}

function issue(
  path: readonly PathSegment[],
  message: string,
  code = 'schema',
  anchor: 'key' | 'value' = 'value',
): PolicyIssue {
  return { path, anchor, severity: 'error', code, message };
}

/** A published port in Docker's `-p [IP:]HOST:CONTAINER[/PROTO]` form. */
const DOCKER_PUBLISH =
  /^(?:[0-9.]+:|\[[0-9A-Fa-f:]+\]:)?([0-9]{1,5}):([0-9]{1,5})(\/(?:tcp|udp))?$/;
/** An IPv6 address (or block) with a zone id: `fe80::1%eth0`. */
const ZONE_ID = /^([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)%([^/\s]*)(\/[0-9]{1,3})?$/;

/**
 * What a value that fails a pattern most likely meant, for mistakes people make often; the
 * pattern's own message would only list what is expected.
 */
function likelyMistake(value: unknown, path: readonly PathSegment[]): string | undefined {
  if (typeof value !== 'string') return undefined;
  const zone = ZONE_ID.exec(value);
  if (zone !== null) {
    const [, address = '', id = '', prefix = ''] = zone;
    return `${show(value)} has a zone id (\`%${id}\`), which firewall rules and ipsets do not take: write ${show(address + prefix)}`;
  }
  const publish = DOCKER_PUBLISH.exec(value);
  if (publish !== null && path.includes('ingress') && path.includes('ports')) {
    const [, hostPort = '', containerPort = '', protocol = ''] = publish;
    return `${show(value)} is Docker's \`-p HOST:CONTAINER\` form: ${hostPort} is the host port, ${containerPort} the container's. A rule names the published host port: write ${show(hostPort + protocol)}`;
  }
  return undefined;
}

export function schemaIssue(error: ErrorObject): PolicyIssue | undefined {
  const path = pointerToPath(error.instancePath);
  const parent = record(error.parentSchema);
  const custom = text(parent['errorMessage']);
  const params = record(error.params);
  const found = describeFound(error.data);
  // A key failing `propertyNames`: ajv reports the key itself through `propertyName`.
  if (error.propertyName !== undefined) {
    const keyPath = [...path, error.propertyName];
    const name = show(error.propertyName);
    if (error.keyword === 'maxLength') {
      return issue(
        keyPath,
        `${name} is too long: at most ${String(params['limit'])} characters`,
        'bad-name',
        'key',
      );
    }
    const why = text(parent['patternErrorMessage']) ?? custom ?? `${name} is not allowed here`;
    return issue(keyPath, `invalid name ${name}: ${why}`, 'bad-name', 'key');
  }
  switch (error.keyword) {
    case 'if':
    case 'propertyNames':
      return undefined; // the errors of the branch taken, or of the key, say more
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const expected = Object.keys(record(parent['properties']));
      return issue(
        [...path, key],
        `unknown key ${show(key)} (expected one of: ${expected.join(', ')})${didYouMean(key, expected, '`')}`,
        'unknown-key',
        'key',
      );
    }
    case 'required':
      return issue(
        path,
        `missing required key \`${String(params['missingProperty'])}\``,
        'missing-key',
      );
    case 'type': {
      const types = String(params['type'])
        .split(',')
        .map((t) => TYPE_NAMES[t] ?? t);
      const expected = custom ?? `\`${lastKey(path)}\` must be ${types.join(' or ')}`;
      return issue(path, `${expected}, found ${found}`);
    }
    case 'const':
      if (path.length === 1 && path[0] === 'version') {
        return issue(path, `${custom ?? 'unsupported version'} (found ${found})`, 'bad-version');
      }
      return issue(path, `${custom ?? `expected ${show(params['allowedValue'])}`}, found ${found}`);
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'] : [];
      return issue(
        path,
        custom ??
          `\`${lastKey(path)}\` must be one of: ${allowed.map((v) => String(v)).join(', ')}; found ${found}`,
      );
    }
    case 'pattern': {
      const mistake = likelyMistake(error.data, path);
      if (mistake !== undefined) return issue(path, mistake);
      const why =
        text(parent['patternErrorMessage']) ?? custom ?? `must match ${String(params['pattern'])}`;
      const hint =
        error.data === 'host' && path.includes('egress')
          ? " (the host is not an egress destination: write the host's address as a CIDR)"
          : '';
      return issue(path, `${why}; found ${show(error.data)}${hint}`);
    }
    case 'minItems':
      return issue(path, `\`${lastKey(path)}\` must not be empty`);
    case 'maxLength':
      return issue(
        path,
        `${show(error.data)} is too long: at most ${String(params['limit'])} characters`,
      );
    case 'minProperties':
    case 'maxProperties':
      return issue(
        path,
        custom ?? `\`${lastKey(path)}\`: ${error.message ?? 'wrong number of keys'}`,
      );
    default:
      return issue(path, custom ?? `\`${lastKey(path)}\` ${error.message ?? 'is not valid'}`);
  }
}
