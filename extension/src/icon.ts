/** The panel's icon: a paper plane (dispatching), drawn in the theme's icon colour. */
import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M2 11.5 21.5 3 14 22l-3.2-7.8L2 11.5zm8.6 1.4 2 4.9 4.6-11.6-6.6 6.7zm-1.2-1.2 6.6-6.7-11.6 4.7 5 2z"/>
</svg>`;

/** The Dispatch icon, for the sidebar tab and the commands. */
export const dispatchIcon = new LabIcon({
  name: 'dispatch-kernel:dispatch',
  svgstr: svg
});
