/**
 * Follow the Docker daemon's event stream (GET /events): one JSON object per event, for as
 * long as the daemon runs. Used by `moat watch` to re-plan when containers or networks change.
 */
import { request, type ClientRequest } from 'node:http';
import type { DockerEndpoint } from './endpoint.js';

export interface DockerEvent {
  readonly type: string;
  readonly action: string;
  /** A container's name, or a network's. */
  readonly name?: string;
}

/** The events after which the firewall may need to change. */
export const RELEVANT_EVENTS: Readonly<Record<string, readonly string[]>> = {
  container: ['start', 'die', 'destroy', 'restart'],
  network: ['connect', 'disconnect', 'create', 'destroy'],
};

export interface EventStream {
  /** Resolves when the stream ends (daemon stopped, connection lost); rejects on errors. */
  readonly ended: Promise<void>;
  close(): void;
}

function toEvent(raw: unknown): DockerEvent | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const e = raw as {
    Type?: unknown;
    Action?: unknown;
    Actor?: { Attributes?: { name?: unknown } };
  };
  if (typeof e.Type !== 'string' || typeof e.Action !== 'string') return undefined;
  const name = e.Actor?.Attributes?.name;
  return { type: e.Type, action: e.Action, ...(typeof name === 'string' ? { name } : {}) };
}

export function followEvents(
  endpoint: DockerEndpoint,
  onEvent: (event: DockerEvent) => void,
): EventStream {
  const filters = JSON.stringify({ type: Object.keys(RELEVANT_EVENTS) });
  let req: ClientRequest | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    req = request(
      {
        socketPath: endpoint.socketPath,
        path: `/events?filters=${encodeURIComponent(filters)}`,
        method: 'GET',
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET /events answered ${res.statusCode ?? '?'}`));
          return;
        }
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let newline = buffer.indexOf('\n');
          while (newline >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            newline = buffer.indexOf('\n');
            if (line === '') continue;
            let parsed: unknown;
            try {
              parsed = JSON.parse(line);
            } catch {
              continue; // a malformed event is skipped, the periodic reconcile still runs
            }
            const event = toEvent(parsed);
            if (event !== undefined && (RELEVANT_EVENTS[event.type] ?? []).includes(event.action))
              onEvent(event);
          }
        });
        res.on('end', () => {
          resolve();
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
  return {
    ended,
    close: () => {
      req?.destroy();
    },
  };
}
