/**
 * The endpoints of a question, in the user's words: sources (`host`, `anyone`, an address, a
 * CIDR block, `container:NAME`) and destinations (`CONTAINER:PORT/PROTO`, `ADDRESS:PORT/PROTO`,
 * `[IPV6]:PORT/PROTO`), parsed and printed back. Pure.
 */
import { UserError } from '../core/errors.js';
import {
  formatAddress,
  formatPrefix,
  hostPrefix,
  parseAddress,
  parsePrefix,
  type Address,
  type Prefix,
} from './address.js';
import type { Protocol } from './model.js';

export type SourceSpec =
  | { readonly kind: 'host' }
  | { readonly kind: 'anyone' }
  | { readonly kind: 'address'; readonly address: Address }
  | { readonly kind: 'cidr'; readonly prefix: Prefix }
  | { readonly kind: 'container'; readonly name: string };

export type TargetSpec =
  /** A container's published (host) port; its own port when it publishes none such. */
  | {
      readonly kind: 'container';
      readonly name: string;
      readonly port: number;
      readonly protocol: Protocol;
    }
  | {
      readonly kind: 'address';
      readonly address: Address;
      readonly port: number;
      readonly protocol: Protocol;
    };

/** A question moat cannot ask of this host (an unknown container, a malformed endpoint). */
export class QuestionError extends UserError {
  constructor(message: string) {
    super(message, 'bad-question');
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `host`, `anyone`, `container:NAME`, an address or a CIDR block. */
export function parseSource(text: string): SourceSpec {
  const t = text.trim();
  if (t === 'host') return { kind: 'host' };
  if (t === 'anyone' || t === 'any') return { kind: 'anyone' };
  if (t.startsWith('container:')) {
    const name = t.slice('container:'.length);
    if (!NAME.test(name)) throw new QuestionError(`"${text}": a container name after container:`);
    return { kind: 'container', name };
  }
  if (t.includes('/')) {
    const prefix = parsePrefix(t);
    if (prefix === undefined) throw new QuestionError(`"${text}" is not a CIDR block`);
    if (prefix.mask === hostPrefix({ family: prefix.family, value: 0n }).mask)
      return { kind: 'address', address: { family: prefix.family, value: prefix.network } };
    return { kind: 'cidr', prefix };
  }
  const address = parseAddress(t);
  if (address === undefined)
    throw new QuestionError(
      `"${text}" is not a source: use host, anyone, container:NAME, an address or a CIDR block`,
    );
  return { kind: 'address', address };
}

/** `NAME:PORT[/PROTO]`, `ADDRESS:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]`; the protocol defaults to tcp. */
export function parseTarget(text: string): TargetSpec {
  const m = /^(?:\[([^\]]+)\]|([^[\]]+)):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text.trim());
  const bad = new QuestionError(
    `"${text}" is not a destination: use CONTAINER:PORT/PROTO, ADDRESS:PORT/PROTO or [IPV6]:PORT/PROTO`,
  );
  if (m === null) throw bad;
  const [, bracketed, plain, portText, protocolText] = m;
  const port = Number(portText);
  const protocol = (protocolText ?? 'tcp') as Protocol;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad;
  if (bracketed !== undefined) {
    const address = parseAddress(bracketed);
    if (address === undefined || address.family !== 'ipv6') throw bad;
    return { kind: 'address', address, port, protocol };
  }
  const host = plain ?? '';
  const address = parseAddress(host);
  if (address !== undefined) return { kind: 'address', address, port, protocol };
  if (!NAME.test(host)) throw bad;
  return { kind: 'container', name: host, port, protocol };
}

export function describeSource(source: SourceSpec): string {
  switch (source.kind) {
    case 'host':
    case 'anyone':
      return source.kind;
    case 'address':
      return formatAddress(source.address);
    case 'cidr':
      return formatPrefix(source.prefix);
    case 'container':
      return `container:${source.name}`;
  }
}

export function describeTarget(target: TargetSpec): string {
  const host =
    target.kind === 'container'
      ? target.name
      : target.address.family === 'ipv6'
        ? `[${formatAddress(target.address)}]`
        : formatAddress(target.address);
  return `${host}:${target.port}/${target.protocol}`;
}
