import { ServerConnection } from '@jupyterlab/services';

import {
  ApiError,
  DispatchApi,
  Features,
  describeFailure,
  failureKind
} from '../api';

describe('failures', () => {
  it('classifies statuses the way the panel words them', () => {
    expect(
      [0, 502, 401, 403, 404, 409, 400, 422, 500].map(failureKind)
    ).toEqual([
      'unreachable',
      'unreachable',
      'forbidden',
      'forbidden',
      'missing',
      'conflict',
      'invalid',
      'invalid',
      'server'
    ]);
  });

  it('says a forbidden section and an unreachable API plainly', () => {
    expect(describeFailure(new ApiError(403, 'Forbidden'), 'secrets')).toBe(
      'You may not see secrets (403: Forbidden).'
    );
    expect(
      describeFailure(new ApiError(0, 'Failed to fetch'), 'Dispatch')
    ).toMatch(/^The Dispatch API is unreachable \(Failed to fetch\)/);
    expect(
      describeFailure(
        new ApiError(409, 'run abc has finished'),
        'cancelling run abc'
      )
    ).toBe('cancelling run abc: run abc has finished (409).');
    expect(describeFailure(new Error('boom'), 'images')).toBe('images: boom');
  });
});

describe('Features', () => {
  it('reads what the server offers from its OpenAPI paths', () => {
    const offered = Features.fromOpenApi({
      paths: { '/functions': {}, '/apis': {}, '/dead-letters': {} }
    });
    expect([offered.apis, offered.deadLetters, offered.organizations]).toEqual([
      true,
      true,
      false
    ]);
    const identity = Features.fromOpenApi({
      paths: { '/iam/organizations': {} }
    });
    expect([identity.apis, identity.organizations]).toEqual([false, true]);
    expect(Features.fromOpenApi(null).has('/functions')).toBe(false);
  });
});

describe('DispatchApi', () => {
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://127.0.0.1:8888/base/'
  });

  it('addresses the public API under the base URL, without empty query values', () => {
    const api = new DispatchApi(settings);
    expect(api.url('runs', { function: 'f', status: '', limit: 5 })).toBe(
      'http://127.0.0.1:8888/base/dispatch/v1/runs?function=f&limit=5'
    );
    expect(api.url('functions/a%20b')).toBe(
      'http://127.0.0.1:8888/base/dispatch/v1/functions/a%20b'
    );
    expect(api.httpBase).toBe('http://127.0.0.1:8888/base/dispatch/http');
  });

  it('names the picked organization in the X-Dispatch-Org header, not the URL', () => {
    const api = new DispatchApi(settings);
    expect(api.orgHeaders()).toEqual({});
    api.org = 'team';
    expect(api.orgHeaders()).toEqual({ 'X-Dispatch-Org': 'team' });
    expect(api.url('functions')).toBe(
      'http://127.0.0.1:8888/base/dispatch/v1/functions'
    );
  });
});

describe('DispatchApi requests', () => {
  it('send the picked organization with every request', async () => {
    const seen: Array<string | null> = [];
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:8888/',
      fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input as RequestInfo, init);
        seen.push(request.headers.get('X-Dispatch-Org'));
        return new Response(JSON.stringify({ items: [] }), { status: 200 });
      }
    });
    const api = new DispatchApi(settings);
    await api.listFunctions();
    api.org = 'team';
    await api.listFunctions();
    expect(seen).toEqual([null, 'team']);
  });
});
