import { RunStore, matches } from '../runs';
import type { IRun, RunStatus } from '../types';

function run(
  id: string,
  fn: string,
  status: RunStatus,
  queued: number,
  finished?: number
): IRun {
  return {
    id,
    org: 'default',
    function: fn,
    status,
    times: { queued, finished }
  };
}

describe('RunStore', () => {
  it('lists runs newest first, filtered, and tells each change', () => {
    const store = new RunStore();
    let changes = 0;
    store.changed.connect(() => changes++);
    store.reset([
      run('a', 'f', 'SUCCEEDED', 1, 2),
      run('b', 'g', 'FAILED', 3, 4)
    ]);
    store.update(run('c', 'f', 'QUEUED', 5));
    expect(changes).toBe(2);
    expect(store.list().map(r => r.id)).toEqual(['c', 'b', 'a']);
    expect(store.list({ function: 'f', status: '' }).map(r => r.id)).toEqual([
      'c',
      'a'
    ]);
    expect(
      store.list({ function: '', status: 'FAILED' }).map(r => r.id)
    ).toEqual(['b']);
    expect(
      matches(run('x', 'f', 'RUNNING', 1), { function: 'g', status: '' })
    ).toBe(false);
  });

  it('never takes a finished run back to a late in-flight record', () => {
    const store = new RunStore();
    store.update(run('a', 'f', 'SUCCEEDED', 1, 2));
    store.update(run('a', 'f', 'RUNNING', 1));
    expect(store.get('a')!.status).toBe('SUCCEEDED');
    store.update(run('b', 'f', 'RUNNING', 1));
    store.update(run('b', 'f', 'CANCELLED', 1, 3));
    expect(store.get('b')!.status).toBe('CANCELLED');
  });

  it('counts runs in flight and failures of the last minute', () => {
    const store = new RunStore();
    store.reset([
      run('a', 'f', 'QUEUED', 100),
      run('b', 'f', 'RUNNING', 100),
      run('c', 'f', 'FAILED', 10, 30),
      run('d', 'g', 'FAILED', 90, 95),
      run('e', 'g', 'SUCCEEDED', 90, 95)
    ]);
    expect(store.inFlight()).toBe(2);
    expect(store.failuresSince(100)).toBe(1);
    expect(store.failuresSince(100, 100)).toBe(2);
    const figures = store.byFunction();
    expect(figures.get('f')).toEqual({ last: store.get('a'), failures: 1 });
    expect(figures.get('g')!.failures).toBe(1);
  });

  it('keeps at most its limit, dropping the oldest finished runs first', () => {
    const store = new RunStore(2);
    store.update(run('old', 'f', 'RUNNING', 1));
    store.update(run('done', 'f', 'SUCCEEDED', 2, 3));
    store.update(run('new', 'f', 'SUCCEEDED', 4, 5));
    expect(store.list().map(r => r.id)).toEqual(['new', 'old']);
  });
});
