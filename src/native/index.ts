/** The package's compiled addons (native/*.c): where they are and how they load. */
export { addonPath, loadAddon, PACKAGE_ROOT, REBUILD_HINT, type AddonLoad } from './addons.js';
