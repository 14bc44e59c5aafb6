/** Port specs as written (`2368`, `2368/tcp`, `8000-8100/udp`) → PortRange. Pure. */
import type { PortRange, Protocol } from './model.js';

export type PortResult =
  | { readonly ok: true; readonly range: PortRange }
  | { readonly ok: false; readonly message: string };

const PORT_SPEC = /^([0-9]{1,5})(?:-([0-9]{1,5}))?(?:\/(tcp|udp))?$/;

/** `spec` has passed the schema's pattern (or is an integer); `all` is handled by the caller. */
export function parsePort(spec: string | number): PortResult {
  if (typeof spec === 'number' && Number.isInteger(spec) && (spec < 1 || spec > 65535)) {
    return { ok: false, message: `port ${spec} is out of range: ports are 1 to 65535` };
  }
  const text = String(spec);
  const match = PORT_SPEC.exec(text);
  if (match === null) {
    return {
      ok: false,
      message: `\`${text}\` is not a port: expected 2368, 2368/tcp, 9000/udp or 8000-8100/tcp`,
    };
  }
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  // Ports without a protocol mean tcp.
  const protocol: Protocol = match[3] === 'udp' ? 'udp' : 'tcp';
  for (const port of [first, last]) {
    if (port < 1 || port > 65535) {
      return { ok: false, message: `port ${port} is out of range: ports are 1 to 65535` };
    }
  }
  if (first > last) {
    return {
      ok: false,
      message: `port range \`${text}\` is backwards: write ${last}-${first}${match[3] === undefined ? '' : `/${match[3]}`}`,
    };
  }
  return { ok: true, range: { protocol, first, last } };
}
