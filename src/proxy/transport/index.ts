/** The TCP under the mesh: how mesh connections notice a peer that has gone silent. */
export {
  MeshSocketLiveness,
  DEFAULT_KEEPALIVE,
  KEEPALIVE_LIMITS,
  NODE_KEEPALIVE_FALLBACK,
  deadPeerBoundSeconds,
  reportOutsideWriteQueue,
  type KeepaliveSettings,
} from './keepalive.js';
export { loadTcpLivenessAddon, TCP_LIVENESS_ADDON_PATH, type TcpLivenessAddon, type TcpLiveness, type TcpInfo } from './liveness-addon.js';
