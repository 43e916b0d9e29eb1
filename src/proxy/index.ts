/** The sidecar proxy: NMP/1 sessions over TCP, its listeners, and its operational surface. */
export { Proxy, type ProxyOptions, type BoundPorts, type ListenAddress, type ReadinessCondition } from './proxy.js';
export type { AddressLookup, Identity, MeshPeer, PeerDirectory, PeerLookup, ServiceEndpoint } from './peers.js';
export type { InboundPolicy } from './inbound/mesh-responder.js';
export type { InboundMode } from './inbound/inbound-capture.js';
export type { BuiltInServices } from './inbound/built-in-services.js';
export type { OriginalDestination, OriginalDestinationOf, OutboundMode, ExplicitRoute } from './outbound/outbound-listeners.js';
export type { SessionSummary, SessionEnd, AbortReason, Direction } from './session/secure-session.js';
export { nativePumpSettingError, PUMP_TURNED_OFF, sessionDescriptors, sessionPump } from './session/native-pump.js';
export { ProxyMetrics, type WatchedResource, type WatchedResourceSync } from './telemetry/metrics.js';
export { createLogger, silentLogger, type Logger } from './telemetry/logger.js';
export * from './protocol/index.js';
export { ReplayWindow, type ReplayVerdict } from './session/replay-window.js';
export { TimestampClock, wallClockNs } from './session/timestamp-clock.js';
export { tuneHeapForProxy, raiseDescriptorLimit, descriptorBudget, type ConnectionCaps, type DescriptorBudget, type DescriptorLimit } from './runtime/index.js';
export { PendingHandshakes, type PendingCaps, type PendingTicket, type ShedReason } from './inbound/pending-handshakes.js';
export { DEFAULT_KEEPALIVE, KEEPALIVE_LIMITS, deadPeerBoundSeconds, type KeepaliveSettings } from './transport/index.js';
