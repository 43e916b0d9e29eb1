/** The package's compiled addons (native/*.c): where they are and how they load. */
export { addonPath, loadAddon, REBUILD_HINT, type AddonLoad } from './addons.js';
