// Headless check of extension.js with stand-ins for the `vscode` API and vscode-languageclient:
// activate() must start `hdsl lsp` over stdio for hspec documents, honour the settings, and
// deactivate() must stop the client. Run: node tests/extension.test.js
"use strict";

const assert = require("assert");
const Module = require("module");
const path = require("path");

const calls = { warnings: [], clients: [] };
let settings = {};

const vscode = {
  workspace: {
    getConfiguration: (section) => {
      assert.strictEqual(section, "hdsl");
      return { get: (key, dflt) => (key in settings ? settings[key] : dflt) };
    },
    createFileSystemWatcher: (glob) => ({ glob }),
  },
  window: { showWarningMessage: (msg) => calls.warnings.push(msg) },
};

class LanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, started: false, stopped: false });
    calls.clients.push(this);
  }
  async start() {
    if (settings.failStart) throw new Error("spawn hdsl ENOENT");
    this.started = true;
  }
  async stop() {
    this.stopped = true;
  }
}
const languageclient = { LanguageClient, TransportKind: { stdio: 0, ipc: 1 } };

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === "vscode") return vscode;
  if (request === "vscode-languageclient/node") return languageclient;
  return load.call(this, request, ...rest);
};

const extension = require(path.join(__dirname, "..", "extension.js"));

(async () => {
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.clients.length, 1);
  const client = calls.clients[0];
  assert.ok(client.started);
  assert.deepStrictEqual(client.serverOptions.run, { command: "hdsl", args: ["lsp"], transport: 0 });
  assert.deepStrictEqual(client.clientOptions.documentSelector.map((s) => s.language), ["hspec", "hspec"]);
  await extension.deactivate();
  assert.ok(client.stopped);

  settings = { "server.command": "/venv/bin/python", "server.args": ["-m", "hdsl.lsp"] };
  await extension.activate({ subscriptions: [] });
  assert.deepStrictEqual(calls.clients[1].serverOptions.run.args, ["-m", "hdsl.lsp"]);
  assert.strictEqual(calls.clients[1].serverOptions.run.command, "/venv/bin/python");

  settings = { failStart: true };
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.warnings.length, 1);
  assert.match(calls.warnings[0], /could not start the language server/);
  await extension.deactivate(); // nothing to stop: must not throw

  settings = { "server.enabled": false };
  const before = calls.clients.length;
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.clients.length, before);
  console.log("extension.js: ok");
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
