/**
 * `moat watch`: a long-running reconciler. It applies at start, as soon as a container starts,
 * after other Docker events (debounced), within a second of a change to moat's own objects
 * (src/app/drift-guard.ts) and on a fixed interval, never two applies at once; it reconnects to the daemon with back-off and stops
 * cleanly when `signal` aborts (SIGTERM).
 */
import { resolveDockerEndpoint } from '../docker/endpoint.js';
import { followEvents, type DockerEvent } from '../docker/events.js';
import { applyCommand, type ApplyOptions } from './apply.js';
import type { ApplyOutcome } from './apply-locked.js';
import type { Context } from './context.js';
import { DriftGuard, type DriftGuardHooks } from './drift-guard.js';

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
  apply: (
    ctx: Context,
    options: ApplyOptions,
    observe?: (outcome: ApplyOutcome) => void,
  ) => Promise<number> = applyCommand,
): Promise<number> {
  const log: DriftGuardHooks['log'] = (message, fields = {}, level = 'info') => {
    const time = new Date().toISOString();
    // A JSON line's fields override its level: a fight is a warning, with what is drifting.
    const tagged = level === 'info' ? fields : { ...fields, level: 'warning' };
    ctx.view.event('watch', { time, message, ...tagged }, `${time} ${message}\n`);
  };
  const applyOptions: ApplyOptions = {
    ...options,
    autoApprove: true,
    quiet: true,
    detailedExitcode: false,
  };
  let running: Promise<boolean> | undefined;
  // Mutated from callbacks: kept in an object so the loop below reads it afresh.
  const pending = { again: false };
  const stopped = (): boolean => signal.aborted;
  const wantsAgain = (): boolean => pending.again && !stopped();
  let debounce: NodeJS.Timeout | undefined;

  const guard = new DriftGuard(ctx, options, {
    log,
    reconcile: (why) => reconcile(why),
    idle: async () => {
      await running;
    },
  });
  const observe = (outcome: ApplyOutcome): void => {
    guard.observe(outcome);
  };

  /** Runs passes until none is wanted; resolves true when the last one succeeded. */
  const reconcile = (why: string): Promise<boolean> => {
    if (running !== undefined) {
      pending.again = true; // one more pass after the current one
      return running;
    }
    running = (async () => {
      let ok = false;
      do {
        pending.again = false;
        log(`reconciling (${why})`);
        try {
          await apply(ctx, applyOptions, observe);
          ok = true;
        } catch (error) {
          ok = false;
          ctx.view.report(error, 'watch: apply failed');
        }
      } while (wantsAgain());
      return ok;
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const onEvent = (event: DockerEvent): void => {
    const why = `${event.type} ${event.name ?? ''} ${event.action}`.replace(/ +/g, ' ');
    // A started container has its addresses now: its own rules go in at once (the defaults
    // hold it meanwhile). Passes never overlap, so a burst of starts costs at most two.
    if (event.type === 'container' && event.action === 'start') {
      void reconcile(why);
      return;
    }
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      void reconcile(why);
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
    await guard.stop();
    await running;
  }
  log('stopped');
  return 0;
}
