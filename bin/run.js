#!/usr/bin/env node
// The `authctl` CLI (built commands in dist/commands).
//
// The Node.js version is checked before anything else loads: static imports are evaluated before
// this body runs, so the only one is the dependency-free check, and oclif comes in by a dynamic
// import afterwards (an old Node would otherwise crash inside it). No top-level await here either,
// so that Nodes too old to parse it still reach the check's message.
import { exitIfUnsupportedNode } from './check-node.js';

exitIfUnsupportedNode();

import('@oclif/core').then(({ execute }) => execute({ dir: import.meta.url }));
