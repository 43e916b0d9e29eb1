/**
 * kubernetes: the API server as a registry source. A reflector (list + watch of any resource
 * into a local store, with retries, bookmarks, a watchdog and relist on 410) over undici,
 * cluster access from a kubeconfig or the pod's service account (client-node's KubeConfig),
 * `KubernetesRegistrySource`, the registry-sync `RegistrySource` of ClearanceRegistry
 * objects, and `ServiceCatalog`, Services and EndpointSlices as ClusterIP:port -> endpoints
 * (the pure part in service-endpoints.ts). All the HTTP of registry-sync lives here; registry-sync itself has none.
 */
export { ClusterAccess, ClusterConfigError, loadClusterAccess, SERVICE_ACCOUNT_DIR, type ClusterAccessOptions } from './cluster.js';
export { TokenFile, TokenFileError } from './token-file.js';
export {
  ApiClient,
  ApiError,
  describeResource,
  resourceUrlPath,
  type ApiClientLimits,
  type ApiFailure,
  type ListPage,
  type ResourcePath,
  type WatchEvent,
  type WatchEventType,
} from './api-client.js';
export { parseJson, JsonError } from './json.js';
export { systemClock, type Clock } from './clock.js';
export {
  Reflector,
  combinedSyncStatus,
  objectKey,
  WATCH_END_REASONS,
  type KubeObject,
  type ListReason,
  type ListedInfo,
  type ListFailedInfo,
  type ReflectorEvents,
  type ReflectorHandlers,
  type ReflectorOptions,
  type ReflectorStatus,
  type SyncStatus,
  type WatchEndReason,
  type WatchLostInfo,
} from './reflector.js';
export {
  KubernetesRegistrySource,
  CLEARANCE_REGISTRY_RESOURCE,
  clearanceRegistryResource,
  readRegistryOnce,
  type KubernetesSourceEvents,
  type KubernetesSourceOptions,
  type ReflectorTuning,
} from './registry-source.js';
export {
  SERVICE_NAME_LABEL,
  familyOf,
  frontendKey,
  parseEndpointSlice,
  parseService,
  serviceFrontends,
  type EndpointCandidate,
  type IpFamily,
  type ParsedService,
  type ParsedSlice,
  type ServiceFrontend,
  type ServicePort,
  type SliceEndpoint,
} from './service-endpoints.js';
export {
  ServiceCatalog,
  endpointSlicesResource,
  servicesResource,
  type ServiceCatalogEvents,
  type ServiceCatalogResource,
  type ServiceCatalogOptions,
} from './service-catalog.js';
