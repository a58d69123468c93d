import { apiUrls, formatDuration, runDuration, statusText } from '../format';
import type { IApi } from '../types';

const api: IApi = {
  name: 'hello',
  org: 'default',
  id: '1',
  revision: 1,
  function: 'greet',
  methods: ['GET'],
  paths: ['/hello/{name}', '/hi']
};

describe('format', () => {
  it('gives the URLs of an API under the gateway of this server, or on its hosts', () => {
    expect(apiUrls(api, '/base/dispatch/http/')).toEqual([
      '/base/dispatch/http/default/hello/{name}',
      '/base/dispatch/http/default/hi'
    ]);
    expect(apiUrls(api, '/dispatch/http', 'http://h:1')[1]).toBe(
      'http://h:1/dispatch/http/default/hi'
    );
    expect(
      apiUrls({ ...api, hosts: ['a.example'], paths: ['/x'] }, '/dispatch/http')
    ).toEqual(['//a.example/x']);
  });

  it('words durations and run times', () => {
    expect(formatDuration(0.0123)).toBe('12 ms');
    expect(formatDuration(3.2)).toBe('3.20 s');
    expect(formatDuration(42)).toBe('42.0 s');
    expect(formatDuration(185)).toBe('3 min 5 s');
    const run = {
      id: 'a',
      org: 'o',
      function: 'f',
      status: 'RUNNING' as const,
      times: { queued: 1 }
    };
    expect(runDuration(run)).toBe('');
    expect(runDuration({ ...run, times: { queued: 1, started: 2 } }, 2.5)).toBe(
      '500 ms'
    );
    expect(
      runDuration({ ...run, times: { queued: 1, started: 2, finished: 4 } }, 99)
    ).toBe('2.00 s');
  });

  it('says runs in flight, and failures only when there are some', () => {
    expect(statusText(3, 0)).toBe('Dispatch: 3 in flight');
    expect(statusText(0, 2)).toBe('Dispatch: 0 in flight, 2 failed (1 min)');
  });
});
