/** The metrics textfile: run history, and what a running watch adds. */
import { describe, expect, test } from '@jest/globals';
import { renderMetrics } from '../../src/state/metrics.js';
import type { RunHistory } from '../../src/state/runs.js';
import type { WatchState } from '../../src/state/watch-state.js';

const history: RunHistory = {
  runs: [
    {
      time: '2026-11-29T04:10:00.000Z',
      duration_ms: 250,
      command: 'moat watch (repair)',
      result: 'changed',
      changes: { add: 1, change: 0, destroy: 0 },
      drift: true,
      drifted: ['add-jump ipv4 DOCKER-USER'],
      backend: 'nft',
    },
  ],
};
const info = { version: '0.1.0', backend: 'nft' };

describe('renderMetrics', () => {
  test('without a running watch: no watch metrics', () => {
    const text = renderMetrics(history, info);
    expect(text).toMatch(/^moat_drift_detected 1$/m);
    expect(text).not.toContain('moat_watch_');
  });

  test("a running watch's repairs, last repair and fight", () => {
    const watch: WatchState = {
      pid: 4242,
      started: '2026-11-29T04:00:00.000Z',
      probes: ['nft monitor', 'ipset'],
      repairs: 7,
      truces: 2,
      last_repair: {
        time: '2026-11-29T04:10:00.250Z',
        drift: ['add-jump ipv4 DOCKER-USER'],
        latency_ms: 312,
      },
      fight: {
        since: '2026-11-29T04:09:00.000Z',
        drift: ['add-jump ipv4 DOCKER-USER'],
        round: 3,
        repairs: 7,
        hold_until: '2026-11-29T04:10:20.000Z',
      },
    };
    const text = renderMetrics(history, info, { watch });
    expect(text).toMatch(/^# TYPE moat_watch_repairs_total counter$/m);
    expect(text).toMatch(/^moat_watch_repairs_total 7$/m);
    expect(text).toMatch(/^moat_watch_last_repair_seconds 0\.312$/m);
    expect(text).toMatch(/^moat_watch_last_repair_timestamp_seconds 1795925400\.25$/m);
    expect(text).toMatch(/^moat_watch_fighting 1$/m);
    expect(text).toMatch(/^moat_watch_fight_round 3$/m);
    expect(text).toMatch(/^moat_watch_fights_ended_total 2$/m);
    const calm: WatchState = { ...watch };
    delete (calm as { fight?: unknown }).fight;
    expect(renderMetrics(history, info, { watch: calm })).toMatch(/^moat_watch_fighting 0$/m);
  });
});
