/**
 * The Docker Engine API's answers (`GET /containers/json`, `GET /networks`) turned into moat's
 * Inventory. Pure: the answers are parsed JSON values. Anything malformed is a MoatError that says
 * which field was wrong, never a TypeError.
 */
import { isIP } from 'node:net';
import { MoatError } from '../core/errors.js';
import { isObject } from '../core/json.js';
import { INTERFACE_NAME } from '../core/interface-name.js';
import type {
  ContainerAttachment,
  DockerContainer,
  DockerNetwork,
  GatewayMode,
  Inventory,
  PortProtocol,
  PublishedPort,
} from './model.js';

type Json = Record<string, unknown>;

function malformed(where: string, what: string, value: unknown): MoatError {
  return new MoatError(
    `the Docker API answered something moat does not understand: ${where} ${what} (got ${describe(value)})`,
    { code: 'docker-api', source: 'user' },
  );
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function object(value: unknown, where: string): Json {
  if (!isObject(value)) throw malformed(where, 'is not an object', value);
  return value;
}

function list(value: unknown, where: string): readonly unknown[] {
  if (!Array.isArray(value)) throw malformed(where, 'is not a list', value);
  return value;
}

/** `null` and a missing field are how the API says "none" for lists and maps. */
function optionalList(value: unknown, where: string): readonly unknown[] {
  return value === undefined || value === null ? [] : list(value, where);
}

function optionalObject(value: unknown, where: string): Json {
  return value === undefined || value === null ? {} : object(value, where);
}

function string(value: unknown, where: string): string {
  if (typeof value !== 'string') throw malformed(where, 'is not a string', value);
  return value;
}

function nonEmptyString(value: unknown, where: string): string {
  const text = string(value, where);
  if (text === '') throw malformed(where, 'is empty', value);
  return text;
}

/**
 * Empty strings from the API mean "no address"; they become undefined. What is there must be
 * an address (or, with `prefix`, a block): it reaches iptables-restore as `-s`/`-d`.
 */
function optionalAddress(value: unknown, where: string, prefix = false): string | undefined {
  if (value === undefined || value === null) return undefined;
  const text = string(value, where);
  if (text === '') return undefined;
  const [address = '', length, ...rest] = text.split('/');
  const family = isIP(address);
  const bits = family === 4 ? 32 : 128;
  const lengthOk =
    length === undefined
      ? !prefix
      : prefix && /^\d{1,3}$/.test(length) && Number(length) <= bits && rest.length === 0;
  if (family === 0 || !lengthOk)
    throw malformed(where, prefix ? 'is not an address block' : 'is not an address', value);
  return text;
}

function port(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535)
    throw malformed(where, 'is not a port number', value);
  return value;
}

function stringMap(value: unknown, where: string): Readonly<Record<string, string>> {
  const map = optionalObject(value, where);
  // fromEntries defines own properties, so even a label named "__proto__" is kept as data.
  return Object.fromEntries(
    Object.keys(map)
      .sort(compareText)
      .map((key) => [key, string(map[key], `${where}["${key}"]`)]),
  );
}

const PROTOCOLS: readonly PortProtocol[] = ['tcp', 'udp', 'sctp'];

function protocol(value: unknown, where: string): PortProtocol {
  const found = PROTOCOLS.find((p) => p === value);
  if (found === undefined) throw malformed(where, 'is not tcp, udp or sctp', value);
  return found;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function publishedPorts(value: unknown, where: string): PublishedPort[] {
  const ports: PublishedPort[] = [];
  const seen = new Set<string>();
  optionalList(value, where).forEach((entry, i) => {
    const at = `${where}[${i}]`;
    const raw = object(entry, at);
    const hostIp = optionalAddress(raw.IP, `${at}.IP`);
    const mapped = raw.PublicPort !== undefined && raw.PublicPort !== null;
    // An exposed but unpublished port has neither a host address nor a host port: nothing
    // reaches it from outside. A binding with an address and no host port is routed.
    if (!mapped && hostIp === undefined) return;
    const published: PublishedPort = {
      hostIp: hostIp ?? '0.0.0.0',
      ...(mapped ? { hostPort: port(raw.PublicPort, `${at}.PublicPort`) } : {}),
      containerPort: port(raw.PrivatePort, `${at}.PrivatePort`),
      protocol: protocol(raw.Type, `${at}.Type`),
    };
    const key = JSON.stringify(published);
    if (seen.has(key)) return; // some daemon versions list a binding twice
    seen.add(key);
    ports.push(published);
  });
  return ports.sort(
    (a, b) =>
      (a.hostPort ?? 0) - (b.hostPort ?? 0) ||
      compareText(a.protocol, b.protocol) ||
      compareText(a.hostIp, b.hostIp) ||
      a.containerPort - b.containerPort,
  );
}

function attachments(value: unknown, where: string): ContainerAttachment[] {
  const networks = optionalObject(value, where);
  return Object.keys(networks)
    .sort(compareText)
    .map((name) => {
      const at = `${where}["${name}"]`;
      const raw = object(networks[name], at);
      const ipv4 = optionalAddress(raw.IPAddress, `${at}.IPAddress`);
      const ipv6 = optionalAddress(raw.GlobalIPv6Address, `${at}.GlobalIPv6Address`);
      return {
        network: name,
        networkId: string(raw.NetworkID ?? '', `${at}.NetworkID`),
        ...(ipv4 === undefined ? {} : { ipv4 }),
        ...(ipv6 === undefined ? {} : { ipv6 }),
      };
    });
}

function containerName(value: unknown, where: string): string {
  const names = list(value, where).map((n, i) => string(n, `${where}[${i}]`));
  // Legacy links add names like "/web/db"; the container's own name has a single slash.
  const own = names.find((n) => n.lastIndexOf('/') === 0) ?? names[0];
  const name = own?.replace(/^\//, '') ?? '';
  if (name === '') throw malformed(where, 'has no container name', value);
  return name;
}

function container(value: unknown, where: string): DockerContainer {
  const raw = object(value, where);
  const settings = optionalObject(raw.NetworkSettings, `${where}.NetworkSettings`);
  return {
    id: nonEmptyString(raw.Id, `${where}.Id`),
    name: containerName(raw.Names, `${where}.Names`),
    labels: stringMap(raw.Labels, `${where}.Labels`),
    state: string(raw.State ?? '', `${where}.State`),
    attachments: attachments(settings.Networks, `${where}.NetworkSettings.Networks`),
    ports: publishedPorts(raw.Ports, `${where}.Ports`),
  };
}

const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
const GATEWAY_MODE_OPTION = 'com.docker.network.bridge.gateway_mode_';
const GATEWAY_MODES: readonly GatewayMode[] = ['nat', 'nat-unprotected', 'routed', 'isolated'];

/** The gateway mode of one family; absent or empty is Docker's default, `nat`. */
function gatewayMode(options: Json, family: 'ipv4' | 'ipv6', where: string): GatewayMode {
  const raw = options[`${GATEWAY_MODE_OPTION}${family}`];
  if (raw === undefined || raw === null || raw === '') return 'nat';
  const mode = GATEWAY_MODES.find((m) => m === raw);
  if (mode === undefined)
    throw malformed(
      `${where}.Options["${GATEWAY_MODE_OPTION}${family}"]`,
      'is not a gateway mode moat knows',
      raw,
    );
  return mode;
}

/** The Linux interface of a bridge network, as the daemon names it when no option says. */
function bridgeInterface(name: string, id: string, options: Json, where: string): string {
  const explicit = options[BRIDGE_NAME_OPTION];
  if (explicit !== undefined && explicit !== null && explicit !== '') {
    const at = `${where}.Options["${BRIDGE_NAME_OPTION}"]`;
    const text = string(explicit, at);
    if (!INTERFACE_NAME.test(text))
      throw malformed(at, 'is not an interface name moat can write', text);
    return text;
  }
  if (name === 'bridge') return 'docker0';
  return `br-${id.slice(0, 12)}`;
}

function subnets(value: unknown, where: string): string[] {
  const ipam = optionalObject(value, where);
  const out: string[] = [];
  optionalList(ipam.Config, `${where}.Config`).forEach((entry, i) => {
    const subnet = optionalAddress(
      object(entry, `${where}.Config[${i}]`).Subnet,
      `${where}.Config[${i}].Subnet`,
      true,
    );
    if (subnet !== undefined) out.push(subnet);
  });
  return out;
}

function network(value: unknown, where: string): DockerNetwork {
  const raw = object(value, where);
  const id = nonEmptyString(raw.Id, `${where}.Id`);
  const name = nonEmptyString(raw.Name, `${where}.Name`);
  const driver = string(raw.Driver ?? '', `${where}.Driver`);
  const options = optionalObject(raw.Options, `${where}.Options`);
  const internal = raw.Internal ?? false;
  if (typeof internal !== 'boolean')
    throw malformed(`${where}.Internal`, 'is not a boolean', internal);
  const ipv6 = raw.EnableIPv6 ?? false;
  if (typeof ipv6 !== 'boolean') throw malformed(`${where}.EnableIPv6`, 'is not a boolean', ipv6);
  return {
    id,
    name,
    driver,
    ...(driver === 'bridge' ? { bridge: bridgeInterface(name, id, options, where) } : {}),
    internal,
    subnets: subnets(raw.IPAM, `${where}.IPAM`),
    ipv6,
    gatewayMode: {
      ipv4: gatewayMode(options, 'ipv4', where),
      ipv6: gatewayMode(options, 'ipv6', where),
    },
  };
}

function sortedBy<T>(items: T[], key: (item: T) => string): T[] {
  return items.sort((a, b) => compareText(key(a), key(b)));
}

/**
 * @param containers the parsed answer of `GET /containers/json`
 * @param networks the parsed answer of `GET /networks`
 */
export function inventoryFromApi(containers: unknown, networks: unknown): Inventory {
  const parsedContainers = list(containers, 'containers').map((c, i) =>
    container(c, `containers[${i}]`),
  );
  const parsedNetworks = list(networks, 'networks').map((n, i) => network(n, `networks[${i}]`));
  return {
    containers: sortedBy(parsedContainers, (c) => `${c.name}\0${c.id}`),
    networks: sortedBy(parsedNetworks, (n) => `${n.name}\0${n.id}`),
  };
}
