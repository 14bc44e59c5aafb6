/** What moat knows about the containers on a host, read from the Docker Engine API. */

export type PortProtocol = 'tcp' | 'udp' | 'sctp';

/**
 * A container port published on the host (`-p [hostIp:]hostPort:containerPort/protocol`).
 * On a network whose gateway mode is `routed` Docker maps no host port: the container's own
 * address and port are opened to the outside, and the API lists the binding without one.
 */
export interface PublishedPort {
  /** `0.0.0.0`, `::`, or a specific host address. */
  readonly hostIp: string;
  /** Absent for a binding Docker routes instead of DNATing (gateway mode `routed`). */
  readonly hostPort?: number;
  readonly containerPort: number;
  readonly protocol: PortProtocol;
}

export interface ContainerAttachment {
  readonly network: string;
  readonly networkId: string;
  /** Empty strings from the API are normalised to undefined. */
  readonly ipv4?: string;
  readonly ipv6?: string;
}

export interface DockerContainer {
  readonly id: string;
  /** Without the leading slash. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** `running`, `exited`, … as the API reports it. */
  readonly state: string;
  readonly attachments: readonly ContainerAttachment[];
  readonly ports: readonly PublishedPort[];
}

/**
 * How Docker lets the outside reach a bridge network, per family (Docker 27+ option
 * `com.docker.network.bridge.gateway_mode_ipv4|6`; older daemons: `nat`).
 * - `nat`: published ports are DNATed from the host; direct access to container addresses is
 *   refused (Docker 28+ drops it in the raw table; older releases accept it for published
 *   container ports).
 * - `nat-unprotected`: as `nat`, and every container port is reachable at its address.
 * - `routed`: no DNAT; published container ports are reachable at the container's address.
 * - `isolated`: no access from outside the network at all.
 */
export type GatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';

export interface DockerNetwork {
  readonly id: string;
  readonly name: string;
  readonly driver: string;
  /** The Linux bridge interface of a bridge network (`docker0`, `br-<id12>`). */
  readonly bridge?: string;
  readonly internal: boolean;
  readonly subnets: readonly string[];
  /** Whether the network has IPv6 addresses (`--ipv6`). */
  readonly ipv6: boolean;
  readonly gatewayMode: Readonly<Record<'ipv4' | 'ipv6', GatewayMode>>;
}

export interface Inventory {
  readonly containers: readonly DockerContainer[];
  readonly networks: readonly DockerNetwork[];
}

export const EMPTY_INVENTORY: Inventory = { containers: [], networks: [] };
