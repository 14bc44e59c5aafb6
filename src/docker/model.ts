/** What moat knows about the containers on a host, read from the Docker Engine API. */
import type { DockerDaemon } from './daemon.js';

export type PortProtocol = 'tcp' | 'udp' | 'sctp';

/** A container port published on the host (`-p [hostIp:]hostPort:containerPort/protocol`). */
export interface PublishedPort {
  /** `0.0.0.0`, `::`, or a specific host address. */
  readonly hostIp: string;
  readonly hostPort: number;
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

export interface DockerNetwork {
  readonly id: string;
  readonly name: string;
  readonly driver: string;
  /** The Linux bridge interface of a bridge network (`docker0`, `br-<id12>`). */
  readonly bridge?: string;
  readonly internal: boolean;
  readonly subnets: readonly string[];
}

export interface Inventory {
  readonly containers: readonly DockerContainer[];
  readonly networks: readonly DockerNetwork[];
  /** The daemon's release and firewall backend; absent in snapshots taken before moat read it. */
  readonly daemon?: DockerDaemon;
}

export const EMPTY_INVENTORY: Inventory = { containers: [], networks: [] };
