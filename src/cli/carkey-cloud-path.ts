/**
 * The cloud path of `carkey` in one module, so that only the commands that
 * may use the cloud load it (src/cli/carkey.ts imports it lazily, before
 * such a command's action runs): `carkey unlock` and the other Bluetooth
 * commands start without the cloud client, its request signing and the
 * cloud document code (docs/performance.md).
 *
 * Guarantees: re-exports only; no side effects on import.
 */
export { CloudClient } from '../cloud-client/client.js';
export { readCloudAudit } from '../phone/cloud/audit.js';
export { clearStoredCloud, cloudConfigPath, findCloud, requireCloud, storeCloud } from '../phone/cloud/config.js';
export { checkStatement, publishPending, registerVehicle } from '../phone/cloud/key-lists.js';
export { acknowledge, postShare, readInbox } from '../phone/cloud/mailbox.js';
