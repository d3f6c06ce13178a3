// xterm.js and its fit addon as one ES module.
export { Terminal } from "@xterm/xterm";
export { FitAddon } from "@xterm/addon-fit";
