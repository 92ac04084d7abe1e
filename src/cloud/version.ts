/**
 * The version carkey-cloud reports (--version, build_info, OpenAPI): the one
 * carkey version (src/common/version.ts), under the name the cloud uses.
 */
export { carkeyVersion as packageVersion } from '../common/version.js';
