/**
 * The JupyterLab extension of dispatch-kernel: the Dispatch panel in the left sidebar, its
 * status-bar item, and commands in the palette. Everything it shows comes from the server's
 * public REST API v1 and its run stream.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';

// The sidebar tab and the status-bar item exist from the start, so these load with the plugin.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { DispatchApi } from './api';
import { dispatchIcon } from './icon';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { PanelModel } from './model';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { DispatchPanel, PANEL_ID } from './panel';
import { DispatchStatus } from './status';

/** The commands the extension adds. */
export namespace CommandIDs {
  export const open = 'dispatch:open';
  export const invoke = 'dispatch:invoke-function';
  export const runsOf = 'dispatch:show-runs';
  export const refresh = 'dispatch:refresh';
}

/** The arguments of the commands that act on a function: without a name, they ask for one. */
const FUNCTION_ARGS = {
  args: {
    type: 'object' as const,
    properties: {
      name: {
        type: 'string' as const,
        description: 'The function (asked for when left out)'
      }
    }
  }
};
const NO_ARGS = { args: { type: 'object' as const, properties: {} } };

async function pickFunction(
  model: PanelModel,
  title: string,
  given: unknown
): Promise<string | null> {
  if (typeof given === 'string' && given) {
    return given;
  }
  await model.refresh('functions');
  const names = (model.lists.functions.items ?? []).map(fn => fn.name);
  if (names.length === 0) {
    model.say('There are no functions yet.', true);
    return null;
  }
  const answer = await InputDialog.getItem({ title, items: names });
  return answer.button.accept ? answer.value : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'dispatch-kernel:panel',
  description:
    'The Dispatch panel: functions, runs, events, images, APIs and secrets.',
  autoStart: true,
  optional: [ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const model = new PanelModel(
      new DispatchApi(app.serviceManager.serverSettings)
    );
    const panel = new DispatchPanel(model);
    panel.title.icon = dispatchIcon;
    app.shell.add(panel, 'left', { rank: 600, type: 'Dispatch' });
    // The run stream feeds the status bar too, so it opens whether the panel is shown or not.
    void model.start();

    const open = () => app.shell.activateById(PANEL_ID);
    const { commands } = app;
    commands.addCommand(CommandIDs.open, {
      label: 'Dispatch: Open Panel',
      caption: 'Show the Dispatch panel',
      icon: dispatchIcon,
      describedBy: NO_ARGS,
      execute: open
    });
    commands.addCommand(CommandIDs.invoke, {
      label: 'Dispatch: Invoke Function…',
      caption: 'Open the invoke form of a function',
      describedBy: FUNCTION_ARGS,
      execute: async args => {
        const name = await pickFunction(model, 'Invoke function', args.name);
        if (name) {
          open();
          model.openInvoke(name);
          model.requestFocus('invoke');
        }
      }
    });
    commands.addCommand(CommandIDs.runsOf, {
      label: 'Dispatch: Show Runs of Function…',
      caption: 'Filter the runs table by a function',
      describedBy: FUNCTION_ARGS,
      execute: async args => {
        const name = await pickFunction(
          model,
          'Show runs of function',
          args.name
        );
        if (name) {
          open();
          model.setRunFilter({ function: name, status: '' });
          model.requestFocus('runs');
        }
      }
    });
    commands.addCommand(CommandIDs.refresh, {
      label: 'Dispatch: Refresh',
      caption: 'Read every list of the Dispatch panel again',
      describedBy: NO_ARGS,
      execute: () =>
        model.unreachable
          ? model.retry()
          : Promise.all([model.refreshAll(), model.loadRuns()])
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: 'Dispatch' });
      }
    }
    if (statusBar) {
      statusBar.registerStatusItem('dispatch-kernel:status', {
        item: new DispatchStatus(model, open),
        align: 'left',
        rank: 50
      });
    }
  }
};

export default plugin;
