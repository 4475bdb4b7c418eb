#!/usr/bin/env node
// Runs a TypeScript file (benchmarks, scripts) through tsx's loader: node bin/run-ts.js FILE [ARGS…]
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const file = process.argv[2];
if (!file) {
  console.error('usage: run-ts.js FILE.ts [args…]');
  process.exit(2);
}
process.argv.splice(2, 1);
await import(pathToFileURL(path.resolve(file)).href);
