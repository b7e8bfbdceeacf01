// Starts the hdsl language server (`hdsl lsp`, stdio) for .hspec files.
// Highlighting, comments, brackets and folding work without it (package.json,
// language-configuration.json, syntaxes/). Install the server with:
//   pip install 'hdsl[lsp]'
"use strict";

const vscode = require("vscode");

let client;

async function activate(context) {
  const config = vscode.workspace.getConfiguration("hdsl");
  if (!config.get("server.enabled", true)) {
    return;
  }
  let lc;
  try {
    lc = require("vscode-languageclient/node");
  } catch (err) {
    vscode.window.showWarningMessage(
      "hdsl: vscode-languageclient is missing (run `npm install` in the extension folder); " +
        "highlighting works, the language server is off."
    );
    return;
  }
  const command = config.get("server.command", "hdsl");
  const args = config.get("server.args", ["lsp"]);
  const serverOptions = {
    run: { command, args, transport: lc.TransportKind.stdio },
    debug: { command, args, transport: lc.TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "hspec" }, { scheme: "untitled", language: "hspec" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.{hspec,onnx,json,npz,npy,csv,nwk,newick}") },
  };
  client = new lc.LanguageClient("hdsl", "hdsl language server", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    vscode.window.showWarningMessage(
      `hdsl: could not start the language server (${command} ${args.join(" ")}): ${err.message}. ` +
        "Install it with `pip install 'hdsl[lsp]'` or set hdsl.server.command."
    );
    client = undefined;
  }
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
