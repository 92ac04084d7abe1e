#!/usr/bin/env node
// Thin launcher: the compiled entry point lives in dist/ (run `npm run build`).
import('../dist/src/cli/carkey-cloud.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('carkey-cloud: not built yet; run `npm run build` (or scripts/install.sh) first');
    process.exit(1);
  }
  throw error;
});
