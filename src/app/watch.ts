/**
 * `moat watch`: a long-running reconciler. It applies at start, after Docker events (debounced)
 * and on a fixed interval (to catch manual edits), never two applies at once; it reconnects to
 * the daemon with back-off and stops cleanly when `signal` aborts (SIGTERM).
 */
import { resolveDockerEndpoint } from '../docker/endpoint.js';
import { followEvents, type DockerEvent } from '../docker/events.js';
import { applyCommand, type ApplyOptions } from './apply.js';
import type { Context } from './context.js';

export interface WatchOptions extends ApplyOptions {
  readonly intervalMs: number;
  readonly debounceMs: number;
}

const MAX_BACKOFF_MS = 30_000;
const FIRST_BACKOFF_MS = 1000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function watchCommand(
  ctx: Context,
  options: WatchOptions,
  signal: AbortSignal,
  /** One reconcile pass; tests inject a fake to observe when watch decides to reconcile. */
  apply: (ctx: Context, options: ApplyOptions) => Promise<number> = applyCommand,
): Promise<number> {
  const log = (message: string): void => {
    const time = new Date().toISOString();
    ctx.view.event('watch', { time, message }, `${time} ${message}\n`);
  };
  const applyOptions: ApplyOptions = {
    ...options,
    autoApprove: true,
    quiet: true,
    detailedExitcode: false,
  };
  let running: Promise<void> | undefined;
  // Mutated from callbacks: kept in an object so the loop below reads it afresh.
  const pending = { again: false };
  const stopped = (): boolean => signal.aborted;
  const wantsAgain = (): boolean => pending.again && !stopped();
  let debounce: NodeJS.Timeout | undefined;

  const reconcile = (why: string): Promise<void> => {
    if (running !== undefined) {
      pending.again = true; // one more pass after the current one
      return running;
    }
    running = (async () => {
      do {
        pending.again = false;
        log(`reconciling (${why})`);
        try {
          await apply(ctx, applyOptions);
        } catch (error) {
          ctx.view.report(error, 'watch: apply failed');
        }
      } while (wantsAgain());
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const onEvent = (event: DockerEvent): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      void reconcile(`${event.type} ${event.name ?? ''} ${event.action}`.replace(/ +/g, ' '));
    }, options.debounceMs);
  };
  const interval = setInterval(() => {
    void reconcile('interval');
  }, options.intervalMs);

  const endpoint = resolveDockerEndpoint(ctx.env);
  let backoff = FIRST_BACKOFF_MS;
  try {
    await reconcile('start');
    while (!stopped()) {
      const stream = followEvents(endpoint, onEvent);
      const stop = (): void => {
        stream.close();
      };
      signal.addEventListener('abort', stop, { once: true });
      const connectedAt = Date.now();
      try {
        await stream.ended;
      } catch (error) {
        if (!signal.aborted)
          ctx.view.warn(`watch: lost the Docker event stream: ${(error as Error).message}`);
      } finally {
        signal.removeEventListener('abort', stop);
      }
      if (stopped()) break;
      if (Date.now() - connectedAt > MAX_BACKOFF_MS) backoff = FIRST_BACKOFF_MS;
      log(`reconnecting to Docker in ${backoff / 1000}s`);
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      // The daemon may have restarted and changed everything: reconcile once reconnected.
      if (!stopped()) void reconcile('reconnected');
    }
  } finally {
    clearInterval(interval);
    clearTimeout(debounce);
    await running;
  }
  log('stopped');
  return 0;
}
