#!/usr/bin/env node
// The optional cloud sync service is not built yet; the name is reserved.
// carkey never needs it: the car decides locally (see README.md).
console.error('carkey-cloud: not implemented yet (the cloud is an optional sync path; cars and phones work without it)');
process.exit(1);
