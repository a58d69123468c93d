import { ApiError, DispatchApi, Features } from '../api';
import { PanelModel } from '../model';
import type { IFunction, IRun, ISecret } from '../types';

/** A DispatchApi whose answers a test sets: the model's logic, without a server. */
class ScriptedApi extends DispatchApi {
  features_: () => Promise<Features> = async () =>
    Features.fromOpenApi({ paths: { '/functions': {}, '/secrets': {} } });
  functions: () => Promise<IFunction[]> = async () => [];
  secrets: () => Promise<ISecret[]> = async () => [];
  runs: IRun[] = [];
  deleted: string[] = [];

  async features(): Promise<Features> {
    return this.features_();
  }
  async listFunctions(): Promise<IFunction[]> {
    return this.functions();
  }
  async listSecrets(): Promise<ISecret[]> {
    return this.secrets();
  }
  async listRuns(): Promise<IRun[]> {
    return this.runs;
  }
  async deleteFunction(name: string): Promise<void> {
    this.deleted.push(name);
  }
}

const fn = (name: string): IFunction => ({
  name,
  org: 'default',
  id: name,
  revision: 1,
  handler: 'handle',
  convention: 'dispatch',
  driver: 'local',
  status: 'READY'
});

describe('PanelModel', () => {
  it('keeps a forbidden section as its own message while the others load', async () => {
    const api = new ScriptedApi();
    api.functions = async () => [fn('greet')];
    api.secrets = async () => {
      throw new ApiError(403, 'Forbidden');
    };
    const model = new PanelModel(api);
    await model.refresh('functions');
    await model.refresh('secrets');
    expect(model.lists.functions).toEqual({
      items: [fn('greet')],
      error: null
    });
    expect(model.lists.secrets).toEqual({
      items: null,
      error: 'You may not see secrets (403: Forbidden).'
    });
    expect(model.unreachable).toBeNull();
  });

  it('says the API is unreachable when nothing answers, and recovers', async () => {
    const api = new ScriptedApi();
    api.functions = async () => {
      throw new ApiError(0, 'Failed to fetch');
    };
    const model = new PanelModel(api);
    await model.refresh('functions');
    expect(model.unreachable).toMatch(
      /^The Dispatch API is unreachable \(Failed to fetch\)/
    );
    api.features_ = async () => {
      throw new ApiError(404, 'Not Found');
    };
    await model.start();
    expect(model.unreachable).toMatch(/^The Dispatch API is not served here/);
    expect(model.features).toBeNull();
    api.features_ = async () => {
      throw new ApiError(403, 'Forbidden');
    };
    await model.start();
    expect(model.unreachable).toBe(
      "You may not see Dispatch's API (403: Forbidden)."
    );
    api.features_ = async () => {
      throw new TypeError('Failed to fetch');
    };
    await model.start();
    expect(model.unreachable).toMatch(
      /^The Dispatch API is unreachable \(Failed to fetch\)/
    );
  });

  it('signals a change only when a list changed', async () => {
    const api = new ScriptedApi();
    api.functions = async () => [fn('a')];
    const model = new PanelModel(api);
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.refresh('functions');
    await model.refresh('functions');
    expect(changes).toBe(1);
    api.functions = async () => [fn('a'), fn('b')];
    await model.refresh('functions');
    expect(changes).toBe(2);
  });

  it('deletes a function, closes what showed it, and says so', async () => {
    const api = new ScriptedApi();
    api.functions = async () => [fn('a')];
    const model = new PanelModel(api);
    model.openInvoke('a');
    expect(model.selectedFunction).toBe('a');
    api.functions = async () => [];
    await model.deleteFunction('a');
    expect(api.deleted).toEqual(['a']);
    expect([model.selectedFunction, model.invokeFunction]).toEqual([
      null,
      null
    ]);
    expect(model.notice).toEqual({ text: 'Deleted function a.', error: false });
    expect(model.lists.functions.items).toEqual([]);
  });
});
