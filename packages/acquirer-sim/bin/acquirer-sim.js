#!/usr/bin/env node
// The acquirer simulator's process: registers tsx's loader (as packages/server/bin/run-ts.js
// does) and runs src/main.ts. Options and environment: see ../README.md.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
