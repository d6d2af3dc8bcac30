#!/usr/bin/env node
// The `authctl` CLI (built commands in dist/commands).
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
