// Unit tests of the panel's TypeScript, with JupyterLab's own jest preset (jsdom, ts-jest).
const jupyterlabPreset = require('@jupyterlab/testutils/lib/jest-config');

// Packages published as ES modules that jest must transform too.
const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyterlab/',
  'lib0',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

module.exports = {
  ...jupyterlabPreset(__dirname),
  automock: false,
  testRegex: 'src/__tests__/.*\\.spec\\.tsx?$',
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
